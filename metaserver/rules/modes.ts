/**
 * File mode bits as Linux numbers them (S_IF* type bits, set-id and sticky
 * bits, rwx classes) and the file type named from a mode. Pure values and
 * arithmetic: never interprets permissions (that is permissions.ts).
 *
 * Convention used by every rule in this folder: a "mode" handed to or
 * returned from a rule is the permission part only (mode & PERMISSION_BITS);
 * the type travels separately as a FileType, so a rule never trusts type bits
 * that may disagree with the stored type.
 */

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;

export const S_IRWXU = 0o700;
export const S_IRWXG = 0o070;
export const S_IRWXO = 0o007;
export const S_IXGRP = 0o010;
/** Any execute bit (owner, group or other). */
export const S_IXUGO = 0o111;
/** rwx for all three classes: what a umask may remove. */
export const S_IRWXUGO = 0o777;
/** Everything chmod may set (Linux S_IALLUGO): set-id, sticky and rwx bits. */
export const PERMISSION_BITS = 0o7777;

export type FileType = 'reg' | 'dir' | 'lnk' | 'fifo' | 'sock' | 'chr' | 'blk';

const TYPE_BITS: Readonly<Record<FileType, number>> = {
  reg: S_IFREG,
  dir: S_IFDIR,
  lnk: S_IFLNK,
  fifo: S_IFIFO,
  sock: S_IFSOCK,
  chr: S_IFCHR,
  blk: S_IFBLK,
};

/** The file type encoded in a full st_mode, or undefined when the type bits name no type (or mode is not a number). */
export function fileTypeOf(mode: number): FileType | undefined {
  if (!Number.isInteger(mode) || mode < 0) return undefined;
  const bits = mode & S_IFMT;
  for (const type of Object.keys(TYPE_BITS) as FileType[]) {
    if (TYPE_BITS[type] === bits) return type;
  }
  return undefined;
}

/** The S_IF* bits of a file type, to build a full st_mode for the wire. */
export function typeBitsOf(type: FileType): number {
  return TYPE_BITS[type];
}

/** The permission part of a mode (drops type bits and anything above them). */
export function permissionBitsOf(mode: number): number {
  return mode & PERMISSION_BITS;
}

/** "r-x" for three rwx bits: used only to make error messages readable. */
export function rwxString(bits: number): string {
  return (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 1 ? 'x' : '-');
}
