const SHA256 = /^sha256:[0-9a-f]{64}$/;
const INITIAL = 1024;

/**
 * digest → value for every blob of a run, flat in memory: which destination repository holds each blob is kept for
 * the whole run (at 200,000 tags, 350,000 blobs). A sha256 digest is kept as its 32 raw bytes in one growing buffer
 * with an open-addressed index over it, not as a 71-character string in a Map: 20 MB outside the heap instead of
 * 44 MB of heap strings and hash table for the collector to trace. Values are interned (a run has a few thousand
 * repositories). Any other digest goes to a plain Map.
 */
export class DigestMap<V> {
  private digests = new Uint8Array(INITIAL * 32);
  private valueOf = new Int32Array(INITIAL);
  /** Open addressing, linear probing: entry index + 1, 0 for free; at most half full. */
  private slots = new Int32Array(INITIAL * 2);
  private count = 0;
  private readonly ids = new Map<V, number>();
  private readonly values: V[] = [];
  private readonly other = new Map<string, V>();
  private readonly scratch = new Uint8Array(32);

  get size(): number {
    return this.count + this.other.size;
  }

  get(digest: string): V | undefined {
    if (!this.parse(digest)) return this.other.get(digest);
    const slot = this.find(this.scratch);
    const entry = this.slots[slot]!;
    return entry === 0 ? undefined : this.values[this.valueOf[entry - 1]!];
  }

  has(digest: string): boolean {
    return this.get(digest) !== undefined;
  }

  set(digest: string, value: V): this {
    if (!this.parse(digest)) {
      this.other.set(digest, value);
      return this;
    }
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.push(value) - 1;
      this.ids.set(value, id);
    }
    let slot = this.find(this.scratch);
    if (this.slots[slot] !== 0) {
      this.valueOf[this.slots[slot]! - 1] = id;
      return this;
    }
    if (this.count === this.valueOf.length) {
      this.grow();
      slot = this.find(this.scratch);
    }
    this.digests.set(this.scratch, this.count * 32);
    this.valueOf[this.count] = id;
    this.slots[slot] = ++this.count;
    return this;
  }

  /** Every digest and its value, in the order they were first set (sha256 digests first). */
  *entries(): Generator<[string, V]> {
    for (let index = 0; index < this.count; index++) {
      yield [`sha256:${Buffer.from(this.digests.buffer, this.digests.byteOffset + index * 32, 32).toString('hex')}`, this.values[this.valueOf[index]!]!];
    }
    yield* this.other;
  }

  /** The 32 bytes of a sha256 digest into the scratch buffer; false for anything else. */
  private parse(digest: string): boolean {
    if (digest.length !== 71 || !SHA256.test(digest)) return false;
    for (let i = 0; i < 32; i++) this.scratch[i] = (nibble(digest.charCodeAt(7 + 2 * i)) << 4) | nibble(digest.charCodeAt(8 + 2 * i));
    return true;
  }

  /** The slot holding these bytes, or the free slot where they would go. */
  private find(bytes: Uint8Array): number {
    const mask = this.slots.length - 1;
    // A sha256 digest's first bytes are as good a hash as any.
    let slot = (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) & mask;
    for (;;) {
      const entry = this.slots[slot]!;
      if (entry === 0 || this.equals(entry - 1, bytes)) return slot;
      slot = (slot + 1) & mask;
    }
  }

  private equals(index: number, bytes: Uint8Array): boolean {
    const at = index * 32;
    for (let i = 0; i < 32; i++) if (this.digests[at + i] !== bytes[i]) return false;
    return true;
  }

  private grow(): void {
    const capacity = this.valueOf.length * 2;
    const digests = new Uint8Array(capacity * 32);
    digests.set(this.digests);
    this.digests = digests;
    const valueOf = new Int32Array(capacity);
    valueOf.set(this.valueOf);
    this.valueOf = valueOf;
    this.slots = new Int32Array(capacity * 2);
    for (let index = 0; index < this.count; index++) this.slots[this.find(this.digests.subarray(index * 32, index * 32 + 32))] = index + 1;
  }
}

function nibble(code: number): number {
  return code <= 0x39 ? code - 0x30 : code - 0x57;
}
