/** Schemas shared by several routes. */

import { Type } from 'typebox';

/** A map from a key, such as `mxcp.endpoints:1`, to a count. */
export const CountMap = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));

export const ProfileQuery = Type.String({
  minLength: 1,
  description: "Profile of the config file; the config's `profile:` key, `default`, or its only profile when omitted.",
});

/** `{"status":"error","message":"..."}`, the shape of every error response. */
export const ErrorResponse = Type.Object(
  {
    status: Type.Literal('error'),
    message: Type.String({ description: 'What failed, on which value or file, and what to do.' }),
    code: Type.Optional(Type.String({ description: 'Stable error code, such as AR_LOG_LOCKED.' })),
  },
  { additionalProperties: true },
);

export const BooleanText = Type.Enum(['true', 'false']);
