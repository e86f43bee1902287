// Typed service errors; one onError maps them to { error: { code, message, details } }.
export type ErrorCode =
  | 'invalid_request'
  | 'malformed_json'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'invalid_model'
  | 'invalid_bundle'
  | 'unsupported_media_type'
  | 'range_not_satisfiable'
  | 'device_timeout'
  | 'capture_disabled'
  | 'rate_limited'
  | 'broker_unavailable';

const STATUS: Record<ErrorCode, 400 | 401 | 403 | 404 | 409 | 413 | 415 | 416 | 422 | 429 | 503 | 504> = {
  invalid_request: 400,
  malformed_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  invalid_model: 422,
  invalid_bundle: 422,
  device_timeout: 504,
  capture_disabled: 403,
  rate_limited: 429,
  broker_unavailable: 503,
};

export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
  get status() {
    return STATUS[this.code];
  }
}

export const NotFound = (what: string, details?: unknown) => new ServiceError('not_found', `${what} not found`, details);
export const Conflict = (message: string, details?: unknown) => new ServiceError('conflict', message, details);
export const Invalid = (message: string, details?: unknown) => new ServiceError('invalid_request', message, details);
export const Forbidden = (message: string, details?: unknown) => new ServiceError('forbidden', message, details);
export const Unauthorized = (message: string) => new ServiceError('unauthorized', message);
