import { PERMISSION_BITS, S_IFDIR, S_IFREG, fileTypeOf, permissionBitsOf, rwxString, typeBitsOf, type FileType } from './modes';

describe('file types from a mode', () => {
  it('name each Linux type from its S_IF* bits and back', () => {
    const linux: Array<[FileType, number]> = [
      ['reg', 0o100644], ['dir', 0o040755], ['lnk', 0o120777], ['fifo', 0o010600],
      ['sock', 0o140755], ['chr', 0o020666], ['blk', 0o060660],
    ];
    for (const [type, mode] of linux) {
      expect(fileTypeOf(mode)).toBe(type);
      expect(typeBitsOf(type) | (mode & PERMISSION_BITS)).toBe(mode);
    }
  });

  it('name no type for type bits Linux does not use, or for a mode that is not a number', () => {
    expect(fileTypeOf(0o000644)).toBeUndefined();
    expect(fileTypeOf(0o030000)).toBeUndefined();
    expect(fileTypeOf(0o170000)).toBeUndefined();
    expect(fileTypeOf(-1)).toBeUndefined();
    expect(fileTypeOf(Number.NaN)).toBeUndefined();
    expect(fileTypeOf(1.5)).toBeUndefined();
  });

  it('the permission part of a mode drops the type bits', () => {
    expect(permissionBitsOf(S_IFDIR | 0o1777)).toBe(0o1777);
    expect(permissionBitsOf(S_IFREG | 0o4755)).toBe(0o4755);
  });

  it('rwx bits read as ls shows them', () => {
    expect(rwxString(5)).toBe('r-x');
    expect(rwxString(0)).toBe('---');
    expect(rwxString(7)).toBe('rwx');
  });
});
