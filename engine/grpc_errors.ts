/**
 * The one place where gRPC status codes meet the engine's error kinds (after containerd's
 * `errdefs/grpc.go`): {@link fromGrpcError} converts what containerd answers into an
 * {@link EngineError} on the way in, {@link grpcCodeOf} gives the status code a gRPC server (CRI)
 * answers for an engine error on the way out.
 *
 * This module does not import grpc-js: the codes are the fixed numbers of the gRPC protocol.
 *
 * @module
 */

import {
  alreadyExists,
  conflict,
  EngineError,
  invalidArgument,
  kindOf,
  messageOf,
  notFound,
  notImplemented,
  systemError,
  unavailable,
} from "./errors.ts";

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The gRPC status code carried by `err` (a grpc-js `ServiceError`), if it has one. */
export function grpcCodeFromError(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null || !("code" in err)) return undefined;
  const code = (err as { code: unknown }).code;
  return typeof code === "number" ? code : undefined;
}

/**
 * Converts an error from a gRPC call into the engine's vocabulary, keeping the original error as
 * `cause` and the server's message (grpc-js puts it in `details`). An {@link EngineError} passes
 * through unchanged; an error without a gRPC code becomes a system error.
 */
export function fromGrpcError(err: unknown): EngineError {
  if (err instanceof EngineError) return err;
  const message = detailsOf(err);
  switch (grpcCodeFromError(err)) {
    case GrpcCode.NOT_FOUND:
      return notFound(message, err);
    case GrpcCode.ALREADY_EXISTS:
      return alreadyExists(message, err);
    case GrpcCode.FAILED_PRECONDITION:
      return conflict(message, err);
    case GrpcCode.INVALID_ARGUMENT:
      return invalidArgument(message, err);
    case GrpcCode.UNAVAILABLE:
      return unavailable(message, err);
    case GrpcCode.UNIMPLEMENTED:
      return notImplemented(message, err);
    default:
      return systemError(message, err);
  }
}

/** The gRPC status code a gRPC server answers for `err`, by its engine error kind. */
export function grpcCodeOf(err: unknown): number {
  switch (kindOf(err)) {
    case "NotFound":
      return GrpcCode.NOT_FOUND;
    case "AlreadyExists":
      return GrpcCode.ALREADY_EXISTS;
    case "Conflict":
      return GrpcCode.FAILED_PRECONDITION;
    case "InvalidArgument":
      return GrpcCode.INVALID_ARGUMENT;
    case "Unavailable":
      return GrpcCode.UNAVAILABLE;
    case "NotImplemented":
      return GrpcCode.UNIMPLEMENTED;
    case "Forbidden":
      return GrpcCode.PERMISSION_DENIED;
    default:
      return GrpcCode.UNKNOWN;
  }
}

/** The server's message: grpc-js's `details`, else the error's own message. */
function detailsOf(err: unknown): string {
  if (typeof err === "object" && err !== null && "details" in err) {
    const details = (err as { details: unknown }).details;
    if (typeof details === "string" && details !== "") return details;
  }
  return messageOf(err);
}
