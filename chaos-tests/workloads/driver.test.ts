/** How a client's error becomes the operation's recorded code and outcome. */
import * as fs from 'node:fs';
import { errorCode, outcomeOf } from './driver';

describe('errorCode and outcomeOf', () => {
  it('keeps the code of a named errno and says whether the operation surely changed nothing', async () => {
    const error = await fs.promises.readFile('/nonexistent-handlefs-path').catch((e: unknown) => e);
    expect(errorCode(error)).toBe('ENOENT');
    expect(outcomeOf('ENOENT')).toBe('fail');
    expect(outcomeOf('EIO')).toBe('unknown');
  });

  it('names an errno libuv does not know (ESTALE) from its number', () => {
    expect(errorCode(Object.assign(new Error('x'), { code: 'Unknown system error -116', errno: -116 }))).toBe('ESTALE');
    expect(outcomeOf('ESTALE')).toBe('unknown');
  });

  it('answers EUNKNOWN for an error without a code', () => {
    expect(errorCode(new Error('no code'))).toBe('EUNKNOWN');
    expect(errorCode(undefined)).toBe('EUNKNOWN');
  });
});
