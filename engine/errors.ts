/**
 * The engine's one error vocabulary (after moby's `errdefs`). Code asks `isNotFound(err)`; it
 * never matches message text. The HTTP layer maps kinds to statuses in one place
 * (`statusOf`), the gRPC layer maps containerd's codes into these kinds.
 *
 * @module
 */

/** The kinds of error the engine distinguishes. */
export type ErrorKind =
  | "NotFound"
  | "InvalidArgument"
  | "Conflict"
  | "AlreadyExists"
  | "NotModified"
  | "Forbidden"
  | "Unavailable"
  | "NotImplemented"
  | "TooLarge"
  | "System";

/** An error of a known kind, keeping the error that caused it. */
export class EngineError extends Error {
  /** What kind of failure this is. */
  readonly kind: ErrorKind;

  /** Makes an error of `kind` with `message`, optionally wrapping `cause`. */
  constructor(kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
    this.name = `${kind}Error`;
  }
}

/** A missing object: `No such container: web`. */
export function notFound(message: string, cause?: unknown): EngineError {
  return new EngineError("NotFound", message, { cause });
}

/** Bad input from the caller. */
export function invalidArgument(message: string, cause?: unknown): EngineError {
  return new EngineError("InvalidArgument", message, { cause });
}

/** The request conflicts with the object's current state (a name in use, a running container). */
export function conflict(message: string, cause?: unknown): EngineError {
  return new EngineError("Conflict", message, { cause });
}

/** The object already exists. */
export function alreadyExists(message: string, cause?: unknown): EngineError {
  return new EngineError("AlreadyExists", message, { cause });
}

/** Nothing to do: the object is already in the requested state (HTTP 304). */
export function notModified(message: string, cause?: unknown): EngineError {
  return new EngineError("NotModified", message, { cause });
}

/** The caller may not do this. */
export function forbidden(message: string, cause?: unknown): EngineError {
  return new EngineError("Forbidden", message, { cause });
}

/** A dependency (containerd, a registry) cannot be reached now. */
export function unavailable(message: string, cause?: unknown): EngineError {
  return new EngineError("Unavailable", message, { cause });
}

/** The feature is not implemented. */
export function notImplemented(message: string, cause?: unknown): EngineError {
  return new EngineError("NotImplemented", message, { cause });
}

/** A request body past the API's size limit (413). */
export function tooLarge(message: string, cause?: unknown): EngineError {
  return new EngineError("TooLarge", message, { cause });
}

/** An unexpected failure inside the engine. */
export function systemError(message: string, cause?: unknown): EngineError {
  return new EngineError("System", message, { cause });
}

/** The kind of `err`, or `"System"` for anything that is not an {@link EngineError}. */
export function kindOf(err: unknown): ErrorKind {
  return err instanceof EngineError ? err.kind : "System";
}

/** Whether `err` is a NotFound error. */
export function isNotFound(err: unknown): boolean {
  return kindOf(err) === "NotFound";
}

/** Whether `err` is an InvalidArgument error. */
export function isInvalidArgument(err: unknown): boolean {
  return kindOf(err) === "InvalidArgument";
}

/** Whether `err` is a Conflict error. */
export function isConflict(err: unknown): boolean {
  return kindOf(err) === "Conflict";
}

/** Whether `err` is an AlreadyExists error. */
export function isAlreadyExists(err: unknown): boolean {
  return kindOf(err) === "AlreadyExists";
}

/** Whether `err` is a NotModified error. */
export function isNotModified(err: unknown): boolean {
  return kindOf(err) === "NotModified";
}

/** Whether `err` is an Unavailable error. */
export function isUnavailable(err: unknown): boolean {
  return kindOf(err) === "Unavailable";
}

/** The HTTP status Docker answers for an error of this kind. */
export function statusOf(err: unknown): number {
  switch (kindOf(err)) {
    case "NotFound":
      return 404;
    case "InvalidArgument":
      return 400;
    case "Conflict":
    case "AlreadyExists":
      return 409;
    case "NotModified":
      return 304;
    case "Forbidden":
      return 403;
    case "Unavailable":
      return 503;
    case "NotImplemented":
      return 501;
    case "TooLarge":
      return 413;
    default:
      return 500;
  }
}

/** The message of any thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
