/**
 * What a directory entry name, a symlink target and an extended attribute
 * (name, value, set flags) may be, with the errno Linux gives for each
 * violation. Names cross the wire as protobuf strings, so every name must be
 * valid UTF-8 (stricter than Linux, which takes any bytes). Pure: never looks
 * at the namespace (whether a name exists is the state machine's question).
 */
import { Check, Errno, OK, Result, fail, ok } from './errno';

/** Linux NAME_MAX: bytes in one path component. */
export const NAME_MAX_BYTES = 255;
/** Linux PATH_MAX, which counts the terminating NUL. */
export const PATH_MAX_BYTES = 4096;
/** A symlink target must fit PATH_MAX with its NUL, so 4095 bytes at most. */
export const SYMLINK_TARGET_MAX_BYTES = PATH_MAX_BYTES - 1;
/** Linux XATTR_NAME_MAX, prefix included. */
export const XATTR_NAME_MAX_BYTES = 255;
/** Linux XATTR_SIZE_MAX: the largest value setxattr accepts. */
export const XATTR_SIZE_MAX_BYTES = 65536;

/** setxattr flags (linux/xattr.h). */
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

export type XattrNamespace = 'user' | 'trusted' | 'security' | 'system';
const XATTR_NAMESPACES: readonly XattrNamespace[] = ['user', 'trusted', 'security', 'system'];

export interface XattrName {
  namespace: XattrNamespace;
  /** The full name, prefix included ("user.comment"). */
  name: string;
}

/**
 * A directory entry name: EINVAL for empty, ".", "..", "/" or NUL inside, or
 * bytes that are not UTF-8; ENAMETOOLONG above 255 UTF-8 bytes. Returns the
 * name as a string (decoded when given as bytes).
 */
export function checkName(name: string | Uint8Array): Result<string> {
  const decoded = decodeBounded(name, NAME_MAX_BYTES);
  switch (decoded.kind) {
    case 'empty':
      return fail(Errno.EINVAL, 'a name may not be empty');
    case 'tooLong':
      return fail(Errno.ENAMETOOLONG, `name is ${decoded.detail}, more than NAME_MAX ${NAME_MAX_BYTES}`);
    case 'invalid':
      return fail(Errno.EINVAL, `name is not ${decoded.detail}`);
    case 'text':
      break;
  }
  const text = decoded.text;
  if (text === '.' || text === '..') return fail(Errno.EINVAL, `"${text}" cannot be created, removed or renamed as an entry`);
  if (text.includes('/')) return fail(Errno.EINVAL, `name ${quote(text)} contains "/"`);
  if (text.includes('\0')) return fail(Errno.EINVAL, `name ${quote(text)} contains NUL`);
  return ok(text);
}

/** A symlink target: ENOENT when empty (as symlink(2)), ENAMETOOLONG beyond 4095 bytes, EINVAL for NUL or non-UTF-8. */
export function checkSymlinkTarget(target: string | Uint8Array): Result<string> {
  const decoded = decodeBounded(target, SYMLINK_TARGET_MAX_BYTES);
  switch (decoded.kind) {
    case 'empty':
      return fail(Errno.ENOENT, 'a symlink target may not be empty');
    case 'tooLong':
      return fail(Errno.ENAMETOOLONG, `symlink target is ${decoded.detail}, more than ${SYMLINK_TARGET_MAX_BYTES}`);
    case 'invalid':
      return fail(Errno.EINVAL, `symlink target is not ${decoded.detail}`);
    case 'text':
      break;
  }
  if (decoded.text.includes('\0')) return fail(Errno.EINVAL, 'symlink target contains NUL');
  return ok(decoded.text);
}

/**
 * An extended attribute name, checked in the order Linux does: ERANGE when
 * empty or over 255 bytes; ENOTSUP outside user./trusted./security./system.;
 * EINVAL for a bare prefix ("user."), NUL or non-UTF-8.
 */
export function checkXattrName(name: string | Uint8Array): Result<XattrName> {
  const decoded = decodeBounded(name, XATTR_NAME_MAX_BYTES);
  switch (decoded.kind) {
    case 'empty':
      return fail(Errno.ERANGE, 'an xattr name may not be empty');
    case 'tooLong':
      return fail(Errno.ERANGE, `xattr name is ${decoded.detail}, more than ${XATTR_NAME_MAX_BYTES}`);
    case 'invalid':
      return fail(Errno.EINVAL, `xattr name is not ${decoded.detail}`);
    case 'text':
      break;
  }
  const text = decoded.text;
  if (text.includes('\0')) return fail(Errno.EINVAL, 'xattr name contains NUL');
  const namespace = XATTR_NAMESPACES.find((ns) => text.startsWith(`${ns}.`));
  if (namespace === undefined) {
    return fail(Errno.ENOTSUP, `xattr ${quote(text)} is in none of the namespaces user., trusted., security., system.`);
  }
  if (text.length === namespace.length + 1) return fail(Errno.EINVAL, `xattr name ${quote(text)} is only a namespace prefix`);
  return ok({ namespace, name: text });
}

/** An xattr value: E2BIG above 64 KiB (an empty value is allowed). */
export function checkXattrValue(value: Uint8Array): Check {
  if (value.byteLength > XATTR_SIZE_MAX_BYTES) {
    return fail(Errno.E2BIG, `xattr value of ${value.byteLength} bytes exceeds XATTR_SIZE_MAX ${XATTR_SIZE_MAX_BYTES}`);
  }
  return OK;
}

/**
 * setxattr's flags against whether the attribute exists: EINVAL for unknown
 * bits, EEXIST for XATTR_CREATE on an existing one, ENODATA for
 * XATTR_REPLACE on a missing one (both flags: whichever applies).
 */
export function checkXattrSetFlags(flags: number, exists: boolean): Check {
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~(XATTR_CREATE | XATTR_REPLACE)) !== 0) {
    return fail(Errno.EINVAL, `unknown setxattr flags ${String(flags)}`);
  }
  if (flags & XATTR_CREATE && exists) return fail(Errno.EEXIST, 'XATTR_CREATE and the attribute exists');
  if (flags & XATTR_REPLACE && !exists) return fail(Errno.ENODATA, 'XATTR_REPLACE and the attribute does not exist');
  return OK;
}

type Decoded =
  | { kind: 'text'; text: string }
  | { kind: 'empty' }
  /** detail: how long it is ("300 bytes in UTF-8"). */
  | { kind: 'tooLong'; detail: string }
  /** detail: what it fails to be ("valid UTF-8"). */
  | { kind: 'invalid'; detail: string };

/**
 * Decodes (bytes) or measures (string) a name without reading past maxBytes,
 * so a hostile megabyte-long name costs no more than a legal one.
 */
function decodeBounded(input: string | Uint8Array, maxBytes: number): Decoded {
  if (typeof input === 'string') {
    if (input.length === 0) return { kind: 'empty' };
    // Every UTF-16 unit needs at least one UTF-8 byte, so this bounds the scan below.
    if (input.length > maxBytes) return { kind: 'tooLong', detail: `at least ${input.length} bytes` };
    const byteLength = utf8ByteLength(input);
    if (byteLength === undefined) return { kind: 'invalid', detail: 'valid Unicode (unpaired surrogate)' };
    if (byteLength > maxBytes) return { kind: 'tooLong', detail: `${byteLength} bytes in UTF-8` };
    return { kind: 'text', text: input };
  }
  if (!(input instanceof Uint8Array)) return { kind: 'invalid', detail: 'a string or bytes' };
  if (input.byteLength === 0) return { kind: 'empty' };
  if (input.byteLength > maxBytes) return { kind: 'tooLong', detail: `${input.byteLength} bytes` };
  if (!isValidUtf8(input)) return { kind: 'invalid', detail: 'valid UTF-8' };
  return { kind: 'text', text: Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8') };
}

/** UTF-8 length of a string, or undefined if it holds an unpaired surrogate (not encodable). */
function utf8ByteLength(text: string): number | undefined {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return undefined;
      bytes += 4;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) return undefined;
    else bytes += 3;
  }
  return bytes;
}

/**
 * Well-formed UTF-8 as Unicode's table 3-7 defines it: no overlong forms
 * (so no disguised "/" or NUL), no surrogates, nothing above U+10FFFF.
 */
function isValidUtf8(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i];
    if (b0 < 0x80) {
      i += 1;
      continue;
    }
    let length: number;
    let secondMin = 0x80;
    let secondMax = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) length = 2;
    else if (b0 >= 0xe0 && b0 <= 0xef) {
      length = 3;
      if (b0 === 0xe0) secondMin = 0xa0; // overlong below U+0800
      if (b0 === 0xed) secondMax = 0x9f; // surrogates U+D800..DFFF
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      length = 4;
      if (b0 === 0xf0) secondMin = 0x90; // overlong below U+10000
      if (b0 === 0xf4) secondMax = 0x8f; // above U+10FFFF
    } else return false; // continuation byte, C0/C1 overlong lead, or F5..FF
    if (i + length > bytes.length) return false;
    const b1 = bytes[i + 1];
    if (b1 < secondMin || b1 > secondMax) return false;
    for (let k = 2; k < length; k++) {
      const b = bytes[i + k];
      if (b < 0x80 || b > 0xbf) return false;
    }
    i += length;
  }
  return true;
}

/** A name for an error message: JSON-quoted (control characters visible) and cut short. */
function quote(text: string): string {
  const shown = text.length > 64 ? `${text.slice(0, 64)}…` : text;
  return JSON.stringify(shown);
}
