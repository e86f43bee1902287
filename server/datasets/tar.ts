/**
 * Just enough tar for image datasets: read the regular files of a ustar / pax / GNU archive (what
 * `tar cf` writes on Linux and macOS) and write a plain ustar archive (what `flotilla datasets push
 * <dir>` sends). No compression; no links, devices or sparse files (they are skipped on read).
 *
 * @example
 * const files = readTar(bytes);              // [{ path: 'images/labels.csv', data: Uint8Array }, …]
 * const tar = writeTar([{ path: 'a.png', data }]);
 */

export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

export interface TarEntry {
  path: string;
  data: Uint8Array;
}

const BLOCK = 512;
const decoder = new TextDecoder();

function text(block: Uint8Array, offset: number, length: number): string {
  const slice = block.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return decoder.decode(end === -1 ? slice : slice.subarray(0, end));
}

function octal(block: Uint8Array, offset: number, length: number): number {
  // GNU base-256 for sizes past 8 GiB: not something a dataset upload needs.
  if (block[offset] & 0x80) throw new TarError('base-256 sizes are not supported');
  const s = text(block, offset, length).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError(`bad octal field "${s}"`);
  return parseInt(s, 8);
}

function checksumOk(header: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
  return sum === octal(header, 148, 8);
}

/** pax extended header records: `<len> key=value\n`. */
function paxPath(data: Uint8Array): string | undefined {
  const s = decoder.decode(data);
  let i = 0;
  while (i < s.length) {
    const space = s.indexOf(' ', i);
    const len = Number(s.slice(i, space));
    if (!Number.isInteger(len) || len <= 0) break;
    const record = s.slice(space + 1, i + len - 1);
    if (record.startsWith('path=')) return record.slice(5);
    i += len;
  }
  return undefined;
}

/** The regular files in a tar archive, in archive order. Throws TarError on a damaged archive. */
export function readTar(bytes: Uint8Array): TarEntry[] {
  if (bytes.length < BLOCK) throw new TarError(`${bytes.length} bytes is too short for a tar archive`);
  const entries: TarEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  while (offset + BLOCK <= bytes.length) {
    const header = bytes.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    if (!checksumOk(header)) throw new TarError(`bad header checksum at byte ${offset}: not a tar archive, or damaged`);
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] || 0x30);
    const dataStart = offset + BLOCK;
    if (dataStart + size > bytes.length) throw new TarError(`archive truncated inside "${text(header, 0, 100)}"`);
    const data = bytes.subarray(dataStart, dataStart + size);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      longName = paxPath(data) ?? longName;
      continue;
    }
    if (type === 'L') {
      longName = text(data, 0, data.length);
      continue;
    }
    if (type === 'g') continue;
    const magic = text(header, 257, 6);
    const prefix = magic.startsWith('ustar') ? text(header, 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    longName = undefined;
    if (type === '0' || type === '7') entries.push({ path: name, data });
  }
  return entries;
}

function writeField(header: Uint8Array, offset: number, length: number, value: string): void {
  const bytes = new TextEncoder().encode(value);
  if (bytes.length > length) throw new TarError(`"${value}" does not fit a ${length}-byte tar field`);
  header.set(bytes, offset);
}

/** A ustar archive of the given files (paths up to 100 bytes, or 255 with a '/' to split at). */
export function writeTar(files: TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of files) {
    const header = new Uint8Array(BLOCK);
    let name = f.path;
    let prefix = '';
    if (new TextEncoder().encode(name).length > 100) {
      const cut = name.lastIndexOf('/', 155);
      if (cut <= 0) throw new TarError(`path too long for ustar: ${f.path}`);
      prefix = name.slice(0, cut);
      name = name.slice(cut + 1);
    }
    writeField(header, 0, 100, name);
    writeField(header, 100, 8, '0000644\0');
    writeField(header, 108, 8, '0000000\0');
    writeField(header, 116, 8, '0000000\0');
    writeField(header, 124, 12, f.data.length.toString(8).padStart(11, '0') + '\0');
    writeField(header, 136, 12, '00000000000\0');
    header[156] = 0x30;
    writeField(header, 257, 6, 'ustar\0');
    writeField(header, 263, 2, '00');
    writeField(header, 345, 155, prefix);
    header.fill(32, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    writeField(header, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
    parts.push(header, f.data);
    const pad = (BLOCK - (f.data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(BLOCK * 2));
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
