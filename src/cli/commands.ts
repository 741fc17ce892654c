/** The list of commands. Each module exports `register(program, ctx)`; add one line per command. */
import type { Command } from 'commander';
import type { CliContext } from './action.js';
import { register as inspect } from './inspect.js';
import { register as doctor } from './doctor.js';
import { register as check } from './check.js';
import { register as filter } from './filter.js';
import { register as stats } from './stats.js';
import { register as score } from './score.js';
import { register as status } from './status.js';
import { register as graph } from './graph.js';
import { register as reshard } from './reshard.js';
import { register as demo } from './demo.js';

export type Register = (program: Command, ctx: CliContext) => void;

export const commands: Register[] = [score, status, filter, stats, reshard, inspect, check, graph, doctor, demo];
