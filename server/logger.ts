import { createRequire } from 'node:module';
import { pino, type Logger, type LevelWithSilent } from 'pino';

/** One logging call in pino's shape: `(fields, message)` or `(message)`. */
export interface LogFn {
  (fields: object, message?: string): void;
  (message: string): void;
}

/**
 * What skipq calls on a logger: a pino logger, or anything shaped like one
 * (`isLevelEnabled` lets hot paths skip building fields for a level that is off).
 */
export interface SkipqLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  isLevelEnabled?(level: string): boolean;
}

/** The levels pino knows; `LOG_LEVEL` takes one of them. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Default: `LOG_LEVEL`, else `info`. */
  level?: string;
  /** Human-readable lines through pino-pretty (when it is installed). Default: when stdout is a terminal. */
  pretty?: boolean;
  /** Where JSON lines go (a pino destination). Default: stdout. */
  destination?: NodeJS.WritableStream;
}

function hasPinoPretty(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * The server's logger: one JSON line per event (pino), or pretty lines in a
 * terminal when the optional pino-pretty is installed; level from `LOG_LEVEL`.
 * @example const logger = createLogger({ level: 'debug' });
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(level as LevelWithSilent)) throw new Error(`LOG_LEVEL "${level}" is not one of ${LOG_LEVELS.join(', ')}`);
  const base = { level, base: { name: 'skipq' } };
  if (options.destination) return pino(base, options.destination as pino.DestinationStream);
  if ((options.pretty ?? process.stdout.isTTY === true) && hasPinoPretty()) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino(base);
}

/** A logger that drops everything (tests). */
export const silentLogger: SkipqLogger = pino({ level: 'silent' });

/**
 * Adapts the older `log(message)` option: every level writes its message (and
 * an error's stack, when a field `err` holds one) to `log`.
 */
export function loggerFromLog(log: (message: string) => void): SkipqLogger {
  const write = (fields: object | string, message?: string): void => {
    if (typeof fields === 'string') return log(fields);
    const err = (fields as { err?: unknown }).err;
    const stack = err instanceof Error ? `: ${err.stack ?? err.message}` : '';
    log(`${message ?? ''}${stack}`);
  };
  return { debug: () => {}, info: write, warn: write, error: write, isLevelEnabled: (level) => level !== 'debug' && level !== 'trace' };
}

/** True when `logger` would write at `level` (a logger without `isLevelEnabled` is asked to). */
export function enabled(logger: SkipqLogger, level: string): boolean {
  return logger.isLevelEnabled ? logger.isLevelEnabled(level) : true;
}
