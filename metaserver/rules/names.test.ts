import { Errno } from './errno';
import {
  XATTR_CREATE,
  XATTR_REPLACE,
  checkName,
  checkSymlinkTarget,
  checkXattrName,
  checkXattrSetFlags,
  checkXattrValue,
} from './names';

const bytes = (...b: number[]) => Uint8Array.from(b);
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const errnoOf = (r: { ok: boolean; errno?: number }) => (r.ok ? 0 : r.errno);

describe('a directory entry name', () => {
  it('is accepted and returned as text, from a string or from UTF-8 bytes', () => {
    expect(checkName('notes.txt')).toEqual({ ok: true, value: 'notes.txt' });
    expect(checkName(utf8('Grüße 日本 🎉'))).toEqual({ ok: true, value: 'Grüße 日本 🎉' });
    expect(checkName('...')).toEqual({ ok: true, value: '...' });
    expect(checkName(' ')).toEqual({ ok: true, value: ' ' });
  });

  it('may not be empty, "." or ".." (EINVAL)', () => {
    for (const name of ['', '.', '..', bytes(), bytes(0x2e), bytes(0x2e, 0x2e)]) expect(errnoOf(checkName(name))).toBe(Errno.EINVAL);
  });

  it('may not contain "/" or NUL (EINVAL)', () => {
    for (const name of ['a/b', '/', 'a\0b', bytes(0x61, 0x2f), bytes(0x00)]) {
      const r = checkName(name);
      expect(errnoOf(r)).toBe(Errno.EINVAL);
      expect(r.ok ? '' : r.message).toMatch(/contains/);
    }
  });

  it('is limited to 255 bytes of UTF-8, not 255 characters (ENAMETOOLONG)', () => {
    expect(checkName('a'.repeat(255)).ok).toBe(true);
    expect(errnoOf(checkName('a'.repeat(256)))).toBe(Errno.ENAMETOOLONG);
    expect(checkName('€'.repeat(85)).ok).toBe(true); // 255 bytes
    expect(errnoOf(checkName('€'.repeat(86)))).toBe(Errno.ENAMETOOLONG); // 86 characters, 258 bytes
    expect(errnoOf(checkName('🎉'.repeat(64)))).toBe(Errno.ENAMETOOLONG); // 128 UTF-16 units, 256 bytes
    expect(errnoOf(checkName(new Uint8Array(256).fill(0x61)))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(checkName('x'.repeat(10_000_000)))).toBe(Errno.ENAMETOOLONG);
  });

  it('given as bytes must be valid UTF-8: no overlong "/", surrogates, stray or truncated sequences (EINVAL)', () => {
    const invalid = [
      bytes(0xc0, 0xaf), // overlong "/"
      bytes(0xc0, 0x80), // overlong NUL
      bytes(0xe0, 0x80, 0xaf), // overlong "/" in three bytes
      bytes(0xf0, 0x80, 0x80, 0xaf), // and in four
      bytes(0xed, 0xa0, 0x80), // U+D800, a surrogate
      bytes(0xf4, 0x90, 0x80, 0x80), // above U+10FFFF
      bytes(0xf5, 0x80, 0x80, 0x80),
      bytes(0x61, 0x80), // stray continuation byte
      bytes(0x61, 0xe2, 0x82), // truncated "€"
      bytes(0xe2, 0x28, 0xa1), // bad continuation
      bytes(0xff),
    ];
    for (const name of invalid) expect(errnoOf(checkName(name))).toBe(Errno.EINVAL);
    expect(checkName(bytes(0xf4, 0x8f, 0xbf, 0xbf)).ok).toBe(true); // U+10FFFF, the last code point
    expect(checkName(bytes(0xef, 0xbb, 0xbf, 0x61))).toEqual({ ok: true, value: '\ufeffa' }); // a BOM is kept, not eaten
  });

  it('given as a string must be encodable: an unpaired surrogate is EINVAL', () => {
    expect(errnoOf(checkName('a\ud800'))).toBe(Errno.EINVAL);
    expect(errnoOf(checkName('\udc00a'))).toBe(Errno.EINVAL);
  });

  it('that is neither a string nor bytes is EINVAL rather than a crash', () => {
    expect(errnoOf(checkName(42 as unknown as string))).toBe(Errno.EINVAL);
    expect(errnoOf(checkName(undefined as unknown as string))).toBe(Errno.EINVAL);
  });

  it('reads a slice of a larger buffer, not the whole buffer', () => {
    const buffer = utf8('xxnamexx');
    expect(checkName(buffer.subarray(2, 6))).toEqual({ ok: true, value: 'name' });
  });
});

describe('a symlink target', () => {
  it('may be any path, relative or absolute, with "." and ".." inside', () => {
    expect(checkSymlinkTarget('../a/./b/')).toEqual({ ok: true, value: '../a/./b/' });
    expect(checkSymlinkTarget('/')).toEqual({ ok: true, value: '/' });
  });

  it('may not be empty (ENOENT, as symlink(2))', () => {
    expect(errnoOf(checkSymlinkTarget(''))).toBe(Errno.ENOENT);
  });

  it('fits PATH_MAX with its terminating NUL: 4095 bytes at most (ENAMETOOLONG)', () => {
    expect(checkSymlinkTarget('a'.repeat(4095)).ok).toBe(true);
    expect(errnoOf(checkSymlinkTarget('a'.repeat(4096)))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(checkSymlinkTarget('é'.repeat(2048)))).toBe(Errno.ENAMETOOLONG);
  });

  it('may not contain NUL or invalid UTF-8 (EINVAL)', () => {
    expect(errnoOf(checkSymlinkTarget('a\0b'))).toBe(Errno.EINVAL);
    expect(errnoOf(checkSymlinkTarget(bytes(0x2f, 0xc0, 0xaf)))).toBe(Errno.EINVAL);
  });
});

describe('an extended attribute name', () => {
  it('lives in one of the namespaces user., trusted., security., system.', () => {
    expect(checkXattrName('user.comment')).toEqual({ ok: true, value: { namespace: 'user', name: 'user.comment' } });
    expect(checkXattrName(utf8('trusted.overlay.opaque'))).toEqual({
      ok: true,
      value: { namespace: 'trusted', name: 'trusted.overlay.opaque' },
    });
    expect(checkXattrName('security.selinux').ok).toBe(true);
    expect(checkXattrName('system.posix_acl_access').ok).toBe(true);
  });

  it('outside those namespaces is not supported (ENOTSUP), prefix matching is exact', () => {
    for (const name of ['comment', 'usr.x', 'User.x', 'user', 'osx.x', '.user.x']) expect(errnoOf(checkXattrName(name))).toBe(Errno.ENOTSUP);
  });

  it('that is only a namespace prefix is EINVAL', () => {
    for (const name of ['user.', 'trusted.', 'security.', 'system.']) expect(errnoOf(checkXattrName(name))).toBe(Errno.EINVAL);
  });

  it('empty or over 255 bytes is ERANGE, as setxattr(2) reports it', () => {
    expect(errnoOf(checkXattrName(''))).toBe(Errno.ERANGE);
    expect(checkXattrName(`user.${'a'.repeat(250)}`).ok).toBe(true);
    expect(errnoOf(checkXattrName(`user.${'a'.repeat(251)}`))).toBe(Errno.ERANGE);
  });

  it('with NUL or invalid UTF-8 is EINVAL', () => {
    expect(errnoOf(checkXattrName('user.a\0b'))).toBe(Errno.EINVAL);
    expect(errnoOf(checkXattrName(bytes(0x75, 0x73, 0x65, 0x72, 0x2e, 0xff)))).toBe(Errno.EINVAL);
  });
});

describe('an extended attribute value and set flags', () => {
  it('a value holds up to 64 KiB, and may be empty (E2BIG beyond)', () => {
    expect(checkXattrValue(new Uint8Array(0)).ok).toBe(true);
    expect(checkXattrValue(new Uint8Array(65536)).ok).toBe(true);
    expect(errnoOf(checkXattrValue(new Uint8Array(65537)))).toBe(Errno.E2BIG);
  });

  it('XATTR_CREATE fails on an existing attribute (EEXIST), XATTR_REPLACE on a missing one (ENODATA)', () => {
    expect(checkXattrSetFlags(0, true).ok).toBe(true);
    expect(checkXattrSetFlags(0, false).ok).toBe(true);
    expect(errnoOf(checkXattrSetFlags(XATTR_CREATE, true))).toBe(Errno.EEXIST);
    expect(checkXattrSetFlags(XATTR_CREATE, false).ok).toBe(true);
    expect(errnoOf(checkXattrSetFlags(XATTR_REPLACE, false))).toBe(Errno.ENODATA);
    expect(checkXattrSetFlags(XATTR_REPLACE, true).ok).toBe(true);
    expect(errnoOf(checkXattrSetFlags(XATTR_CREATE | XATTR_REPLACE, true))).toBe(Errno.EEXIST);
    expect(errnoOf(checkXattrSetFlags(XATTR_CREATE | XATTR_REPLACE, false))).toBe(Errno.ENODATA);
  });

  it('unknown flag bits are EINVAL', () => {
    expect(errnoOf(checkXattrSetFlags(4, false))).toBe(Errno.EINVAL);
    expect(errnoOf(checkXattrSetFlags(-1, false))).toBe(Errno.EINVAL);
    expect(errnoOf(checkXattrSetFlags(1.5, false))).toBe(Errno.EINVAL);
  });
});
