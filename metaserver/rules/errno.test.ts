import { Errno, FsError, OK, errnoName, fail, failureOf, isErrno, ok, unwrap } from './errno';

describe('errno values', () => {
  it('carry the Linux numbers the kernel expects back from the client', () => {
    const linux: Record<string, number> = {
      EPERM: 1, ENOENT: 2, EIO: 5, E2BIG: 7, EBADF: 9, EAGAIN: 11, EACCES: 13, EBUSY: 16, EEXIST: 17,
      EXDEV: 18, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EFBIG: 27, ENOSPC: 28, EROFS: 30, EMLINK: 31,
      ERANGE: 34, ENAMETOOLONG: 36, ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, ENOTSUP: 95, ESTALE: 116, EDQUOT: 122,
    };
    for (const [name, n] of Object.entries(linux)) expect(Errno[name as keyof typeof Errno]).toBe(n);
  });

  it('are all distinct, so a number names exactly one error', () => {
    const numbers = Object.values(Errno);
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it('are named back from their number, and an unknown number is named without throwing', () => {
    expect(errnoName(Errno.ENOENT)).toBe('ENOENT');
    expect(errnoName(95)).toBe('ENOTSUP');
    expect(errnoName(9999)).toBe('EUNKNOWN(9999)');
    expect(errnoName(Number.NaN)).toBe('EUNKNOWN(NaN)');
  });

  it('recognise a number off the wire only if it is in the table', () => {
    expect(isErrno(2)).toBe(true);
    expect(isErrno(3)).toBe(false);
    expect(isErrno('2')).toBe(false);
  });
});

describe('results and FsError', () => {
  it('a failure carries its errno and a message naming the problem', () => {
    const r = fail(Errno.ENOENT, 'no entry "a" in directory 7');
    expect(r).toEqual({ ok: false, errno: 2, message: 'no entry "a" in directory 7' });
  });

  it('unwrap returns the value of a success and throws an FsError for a failure', () => {
    expect(unwrap(ok(42))).toBe(42);
    expect(unwrap(OK)).toBeUndefined();
    let thrown: unknown;
    try {
      unwrap(fail(Errno.EACCES, 'need w'));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(FsError);
    const error = thrown as FsError;
    expect(error.errno).toBe(13);
    expect(error.code).toBe('EACCES');
    expect(error.message).toBe('EACCES: need w');
    expect(failureOf(error)).toEqual(fail(Errno.EACCES, 'need w'));
  });

  it('the shared OK cannot be altered by a careless caller', () => {
    expect(Object.isFrozen(OK)).toBe(true);
  });
});
