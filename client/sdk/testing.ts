/**
 * Helpers for tests that drive the SDK (never used by the SDK itself). Owns
 * nothing but test conveniences.
 */
import { MetaError } from './errors';

/** The errno name a call failed with (its MetaError's code), or 'no error'; any other failure is thrown on. */
export async function failureCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof MetaError) return error.code;
    throw error;
  }
  return 'no error';
}
