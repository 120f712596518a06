/**
 * Signal names and numbers (Linux x86_64), parsed as Docker parses `--signal` and `StopSignal`.
 *
 * @module
 */
import { invalidArgument } from "./errors.ts";

const numbers: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  IOT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  POLL: 29,
  PWR: 30,
  SYS: 31,
};

const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** Parses `9`, `KILL`, `SIGKILL`, `sigkill` or `RTMIN+3` into a signal number. */
export function parseSignal(text: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const number = Number(trimmed);
    if (number < 1 || number > SIGRTMAX) throw invalidArgument(`Invalid signal: ${text}`);
    return number;
  }
  const name = trimmed.toUpperCase().replace(/^SIG/, "");
  const known = numbers[name];
  if (known !== undefined) return known;
  const rt = /^RTM(IN|AX)([+-]\d+)?$/.exec(name);
  if (rt) {
    const base = rt[1] === "IN" ? SIGRTMIN : SIGRTMAX;
    const number = base + Number(rt[2] ?? 0);
    if (number >= SIGRTMIN && number <= SIGRTMAX) return number;
  }
  throw invalidArgument(`Invalid signal: ${text}`);
}
