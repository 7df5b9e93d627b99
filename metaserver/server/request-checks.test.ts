/**
 * The field checks of fh and version requests: what is malformed (INVALID_ARGUMENT
 * naming the field) versus what the state answers.
 */
import { ConflictPolicy } from '../../proto/meta-proto';
import { RequestError, inlineBytesOf, requirePolicy, requireWritten } from './request-checks';

describe('request checks of commits', () => {
  it('turns written ranges into the command\'s base64 ranges', () => {
    expect(requireWritten([{ offset: 3, data: Buffer.from('hi') }])).toEqual([{ offset: 3, dataBase64: Buffer.from('hi').toString('base64') }]);
    expect(requireWritten(null)).toEqual([]);
  });

  it('refuses offsets that are not non-negative safe integers, naming the range', () => {
    expect(() => requireWritten([{ offset: -1, data: Buffer.from('x') }])).toThrow(/^written\[0\]\.offset must be/);
    expect(() => requireWritten([{ offset: 0, data: Buffer.from('x') }, { offset: 2 ** 64, data: Buffer.from('x') }])).toThrow(/^written\[1\]\.offset/);
    expect(() => requireWritten([{ offset: Number.MAX_SAFE_INTEGER, data: Buffer.from('xy') }])).toThrow(/^written\[0\] ends beyond/);
  });

  it('refuses empty ranges and more ranges than a command may carry', () => {
    expect(() => requireWritten([{ offset: 0, data: new Uint8Array() }])).toThrow(RequestError);
    const many = Array.from({ length: 4_097 }, (_, i) => ({ offset: i, data: Buffer.from('x') }));
    expect(() => requireWritten(many)).toThrow(/4097 ranges, more than 4096/);
  });

  it('counts the bytes a commit carries, for the EFBIG answer', () => {
    expect(inlineBytesOf([{ offset: 0, data: Buffer.alloc(4_000) }, { offset: 9_000, data: Buffer.alloc(97) }])).toBe(4_097);
  });

  it('knows only the LWW and REJECT policies', () => {
    expect(requirePolicy(ConflictPolicy.LWW)).toBe('lww');
    expect(requirePolicy(ConflictPolicy.REJECT)).toBe('reject');
    expect(() => requirePolicy(2)).toThrow(/^policy 2 is neither/);
  });
});
