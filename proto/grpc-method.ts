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

export interface MethodShape {
  requestStream: boolean;
  responseStream: boolean;
  /**
   * 'answer' (the default): undecodable request bytes reach the handler as a
   * MalformedRequest. 'throw': grpc-js answers INTERNAL itself — only for test
   * harnesses whose handlers do not look for MalformedRequest.
   */
  malformed?: 'answer' | 'throw';
}

/** A method `/${pkg}.${service}/${name}` whose messages are `${pkg}.${requestType}` and `${pkg}.${responseType}` in root. */
export function grpcMethod<Req, Res>(root: protobuf.Root, pkg: string, service: string, name: string, requestType: string, responseType: string, shape: MethodShape): grpc.MethodDefinition<Req | MalformedRequest, Res> {
  const req = root.lookupType(`${pkg}.${requestType}`);
  const res = root.lookupType(`${pkg}.${responseType}`);
  return {
    path: `/${pkg}.${service}/${name}`,
    requestStream: shape.requestStream,
    responseStream: shape.responseStream,
    requestSerialize: (value: Req | MalformedRequest) => asBuffer(req.encode(value as object).finish()),
    requestDeserialize: (bytes: Buffer) => {
      if (shape.malformed === 'throw') return req.toObject(req.decode(bytes), CONVERSION) as Req;
      try {
        return req.toObject(req.decode(bytes), CONVERSION) as Req;
      } catch (error) {
        return { malformed: `request is not a ${pkg}.${requestType}: ${(error as Error).message}` };
      }
    },
    responseSerialize: (value: Res) => asBuffer(res.encode(value as object).finish()),
    responseDeserialize: (bytes: Buffer) => res.toObject(res.decode(bytes), CONVERSION) as Res,
  };
}

/** A unary method that answers undecodable requests itself (see MalformedRequest). */
export function unaryMethod<Req, Res>(root: protobuf.Root, pkg: string, service: string, name: string, requestType: string, responseType: string): grpc.MethodDefinition<Req | MalformedRequest, Res> {
  return grpcMethod<Req, Res>(root, pkg, service, name, requestType, responseType, { requestStream: false, responseStream: false });
}

/** protobufjs hands a Buffer on Node already; wrapping (not Buffer.from, which copies) keeps a 1 MiB block from being copied once more per send. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
