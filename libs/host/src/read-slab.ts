/**
 * Where a connection's reads land: consecutive regions of a slab, each a view handed to the
 * reader, with a new slab once what is left is smaller than a read may be. Node's own reads
 * allocate an ArrayBuffer with its own backing store per read: one per reply for a host that
 * sends one small request at a time. A reply kept by its caller keeps its slab (SLAB_BYTES)
 * alive.
 */
export class ReadSlab {
  static readonly SLAB_BYTES = 256 * 1024;
  /** The room offered for each read (what Node asks for by default). */
  static readonly READ_BYTES = 64 * 1024;
  private slab = Buffer.allocUnsafeSlow(ReadSlab.SLAB_BYTES);
  private used = 0;

  /** The buffer the next read goes into. */
  region(): Buffer {
    if (ReadSlab.SLAB_BYTES - this.used < ReadSlab.READ_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(ReadSlab.SLAB_BYTES);
      this.used = 0;
    }
    return this.slab.subarray(this.used);
  }

  /** The `bytes` a read put at the start of `region` (the last region()), now the reader's. */
  commit(region: Uint8Array, bytes: number): Buffer {
    const chunk = Buffer.from(region.buffer, region.byteOffset, bytes);
    if (region.buffer === this.slab.buffer) {
      this.used = region.byteOffset - this.slab.byteOffset + bytes;
    }
    return chunk;
  }
}
