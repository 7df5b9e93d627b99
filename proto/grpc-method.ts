/**
 * Builds a grpc-js method definition from a protobufjs-loaded schema, so a
 * service is described once (its .proto) and served without generated code.
 * Owns (de)serialization only; must never carry server logic.
 *
 * A request that does not decode does not throw inside grpc-js (which would
 * answer INTERNAL): it becomes a MalformedRequest the handler answers with
 * INVALID_ARGUMENT, because a bad request is the caller's fault, not ours.
 */
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';

const CONVERSION: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true };

/** What requestDeserialize yields for bytes that are not the request type. */
export interface MalformedRequest {
  readonly malformed: string;
}

export function isMalformedRequest(value: unknown): value is MalformedRequest {
  return typeof value === 'object' && value !== null && typeof (value as MalformedRequest).malformed === 'string';
}

/** A unary method `/${service}/${name}` whose messages are `${pkg}.${requestType}` and `${pkg}.${responseType}` in root. */
export function unaryMethod<Req, Res>(root: protobuf.Root, pkg: string, service: string, name: string, requestType: string, responseType: string): grpc.MethodDefinition<Req | MalformedRequest, Res> {
  const req = root.lookupType(`${pkg}.${requestType}`);
  const res = root.lookupType(`${pkg}.${responseType}`);
  return {
    path: `/${pkg}.${service}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Req | MalformedRequest) => Buffer.from(req.encode(value as object).finish()),
    requestDeserialize: (bytes: Buffer) => {
      try {
        return req.toObject(req.decode(bytes), CONVERSION) as Req;
      } catch (error) {
        return { malformed: `request is not a ${pkg}.${requestType}: ${(error as Error).message}` };
      }
    },
    responseSerialize: (value: Res) => Buffer.from(res.encode(value as object).finish()),
    responseDeserialize: (bytes: Buffer) => res.toObject(res.decode(bytes), CONVERSION) as Res,
  };
}
