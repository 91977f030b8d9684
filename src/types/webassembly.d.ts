/**
 * The parts of the WebAssembly JavaScript API this project uses. TypeScript declares
 * the API only in its DOM and worker libraries, which do not describe Node.js.
 */
declare namespace WebAssembly {
  interface MemoryDescriptor {
    /** Size in pages of 64 KiB. */
    initial: number;
    maximum: number;
    /** True for memory that threads share; its buffer is then a SharedArrayBuffer. */
    shared?: boolean;
  }

  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  }

  class Module {
    constructor(bytes: Uint8Array);
  }

  class Instance {
    constructor(module: Module, imports: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
}
