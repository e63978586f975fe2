/**
 * Minimal tar support for the rootfs cache: find where an archive's entries end, and write one
 * file entry (the cached rootfs is streamed into `docker import` with its entrypoint replaced).
 *
 * @module
 */

import { decoder } from "./util.ts";

const encoder = new TextEncoder();

/** The cached tarball cannot be used (it is rebuilt). */
export class CorruptCacheError extends Error {}

export function tarNumber(field: Uint8Array): number {
  if ((field[0] & 0x80) !== 0) { // GNU base-256
    let value = field[0] & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = decoder.decode(field).replace(/[\0 ]+$/g, "").trim();
  if (!/^[0-7]*$/.test(text)) throw new CorruptCacheError(`bad tar number "${text}"`);
  return text === "" ? 0 : parseInt(text, 8);
}

export function tarChecksumOk(header: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
  return sum === tarNumber(header.subarray(148, 156));
}

export async function readFull(file: Deno.FsFile, buffer: Uint8Array): Promise<boolean> {
  for (let got = 0; got < buffer.length;) {
    const n = await file.read(buffer.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

/** Normalised member name: no leading "./" or "/", no trailing "/". */
export function tarMemberName(name: string): string {
  return name.replace(/^(\.?\/)+/, "").replace(/\/+$/, "");
}

export function tarString(field: Uint8Array): string {
  const nul = field.indexOf(0);
  return decoder.decode(nul === -1 ? field : field.subarray(0, nul));
}

/** The `path` record of a pax extended header, if any. */
export function paxPath(data: Uint8Array): string | undefined {
  for (const record of decoder.decode(data).split("\n")) {
    const match = /^\d+ path=(.*)$/s.exec(record);
    if (match) return match[1];
  }
  return undefined;
}

export interface TarLayout {
  /** Byte ranges [start, end) to copy: every member except the dropped ones. */
  keep: Array<[number, number]>;
}

/**
 * Walks the headers of an uncompressed tar archive (ustar, GNU or pax, not sparse) and returns the
 * byte ranges of all members except `drop` (with their long-name/pax headers), up to but without
 * the end-of-archive marker. docker import refuses duplicate paths, so a member that is going to
 * be appended must be dropped first.
 */
export async function scanTar(file: Deno.FsFile, drop: string): Promise<TarLayout> {
  const header = new Uint8Array(512);
  const keep: Array<[number, number]> = [];
  let keepFrom = 0;
  let memberStart = 0; // first header (long name / pax) of the member being read
  let longName: string | undefined;
  for (let offset = 0;;) {
    await file.seek(offset, Deno.SeekMode.Start);
    if (!(await readFull(file, header))) throw new CorruptCacheError("tarball ends without marker");
    if (header.every((byte) => byte === 0)) {
      if (offset === 0) throw new CorruptCacheError("empty tarball");
      if (offset > keepFrom) keep.push([keepFrom, offset]);
      return { keep };
    }
    if (!tarChecksumOk(header)) throw new CorruptCacheError(`bad tar header at ${offset}`);
    const type = String.fromCharCode(header[156]);
    if (type === "S") throw new CorruptCacheError("sparse tar entries are not supported");
    const size = "123456".includes(type) ? 0 : tarNumber(header.subarray(124, 136));
    const next = offset + 512 + Math.ceil(size / 512) * 512;
    if (type === "L" || type === "x") {
      const data = new Uint8Array(size);
      if (!(await readFull(file, data))) throw new CorruptCacheError("truncated tarball");
      longName = type === "L" ? tarString(data) : paxPath(data) ?? longName;
    } else if (type !== "K" && type !== "g") {
      let name = longName;
      if (name === undefined) {
        name = tarString(header.subarray(0, 100));
        const prefix = tarString(header.subarray(345, 500));
        if (tarString(header.subarray(257, 263)) === "ustar" && prefix !== "") {
          name = `${prefix}/${name}`;
        }
      }
      if (tarMemberName(name) === tarMemberName(drop)) {
        if (memberStart > keepFrom) keep.push([keepFrom, memberStart]);
        keepFrom = next;
      }
      longName = undefined;
      memberStart = next;
    }
    if (type === "g") memberStart = next;
    offset = next;
  }
}

export function tarFileEntry(
  name: string,
  data: Uint8Array,
  mode: number,
  mtime: number,
): Uint8Array {
  const header = new Uint8Array(512);
  const put = (offset: number, length: number, text: string) =>
    header.set(encoder.encode(text).subarray(0, length), offset);
  const octal = (value: number, length: number) =>
    `${value.toString(8).padStart(length - 1, "0")}\0`;
  if (encoder.encode(name).length > 100) throw new Error(`tar name too long: ${name}`);
  put(0, 100, name);
  put(100, 8, octal(mode, 8));
  put(108, 8, octal(0, 8)); // uid
  put(116, 8, octal(0, 8)); // gid
  put(124, 12, octal(data.length, 12));
  put(136, 12, octal(mtime, 12));
  put(148, 8, "        ");
  put(156, 1, "0"); // regular file
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, "root");
  put(297, 32, "root");
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  const entry = new Uint8Array(512 + Math.ceil(data.length / 512) * 512);
  entry.set(header);
  entry.set(data, 512);
  return entry;
}

/** Output of a docker CLI call. */
