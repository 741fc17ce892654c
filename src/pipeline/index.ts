/** The scoring pipeline: `scorePool()` (mimic score) and `runStatus()` (mimic status). */
export { scorePool, type ScoreSummary } from './score-pool.js';
export { resolveScoreOptions, type ScoreOptions, type ScoreProgress } from './options.js';
export { planRun, parseProxySpec, assignWorker, scoreFilePath, type RunPlan, type PlannedShard, type Checkpoint } from './plan.js';
export { runStatus, formatStatus, type StatusReport, type ShardStatus, type ShardRunState } from './status.js';
export { readUidFile, UidSet } from './uid-set.js';
