/**
 * The jupyter_di comm protocol, version 1 (docs/comm-protocol.md is the reference).
 *
 * Every message is a JSON object with a `type`. The kernel side lives in
 * jupyter_di/notebook/comm.py; keep the two in step and bump PROTOCOL_VERSION on any
 * incompatible change.
 */

export const COMM_TARGET = 'jupyter_di';
export const PROTOCOL_VERSION = 1;

export type BlockKind = 'source' | 'destination' | 'python';
export type BlockStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped' | 'idle';

export const BLOCK_STATUSES: ReadonlyArray<BlockStatus> = [
  'pending',
  'running',
  'done',
  'failed',
  'skipped',
  'idle'
];

/** One node of the pipeline graph. */
export interface IBlock {
  name: string;
  kind: BlockKind;
  upstream: string[];
  cell_id: string | null;
  status: BlockStatus;
  duration_s: number | null;
  message: string | null;
}

// -- both directions -------------------------------------------------------
export interface IHello {
  type: 'hello';
  version: number;
}

export interface IAck {
  type: 'ack';
  request_type: string;
  success: boolean;
  error?: string;
  version?: number;
}

// -- kernel -> extension ---------------------------------------------------
export interface IReplaceCellSource {
  type: 'replace_cell_source';
  cell_id: string;
  source: string;
}

export interface ISetCellMetadata {
  type: 'set_cell_metadata';
  cell_id: string;
  key: string;
  /** Any JSON value; `null` deletes the key. */
  value: unknown;
}

export interface IGraph {
  type: 'graph';
  blocks: IBlock[];
}

export interface IStatus {
  type: 'status';
  name: string;
  status: BlockStatus;
  duration_s: number | null;
  message: string | null;
}

/** One run of the run history (jupyter_di/state/history.py), newest first in `runs`. */
export interface IRunSummary {
  id: number;
  started: string;
  ended: string;
  origin: string;
  /** done, incomplete (a stream may have missed changes) or failed. */
  status: string;
  rows: number;
  /** The first failed block's error, or null. */
  error: string | null;
}

export interface IRuns {
  type: 'runs';
  runs: IRunSummary[];
}

/** One stream of a run's block: rows, its table, a source stream's bookmark before and after. */
export interface IRunStream {
  rows?: number;
  table?: string;
  seconds?: number;
  /** Present for source streams; null: no bookmark yet. */
  bookmark_before?: unknown;
  bookmark_after?: unknown;
}

/** One block of a recorded run (jupyter_di/pipeline/report.py's report_dict). */
export interface IRunBlockRecord {
  name: string;
  kind: string | null;
  status: string;
  seconds: number | null;
  reason: string | null;
  error?: string | null;
  streams: Record<string, IRunStream>;
  warnings: { stream?: string; message?: string }[];
}

/** A run's whole record, as `jupyter-di runs show ID --json` prints it. */
export interface IRunRecord {
  id: number;
  pipeline: string;
  origin: string;
  status: string;
  started: string;
  ended: string;
  blocks: IRunBlockRecord[];
}

/** The answer to `request_run`: the run's record, or null (not a run of this notebook). */
export interface IRun {
  type: 'run';
  id: number;
  run: IRunRecord | null;
}

export type KernelMessage =
  IHello | IAck | IReplaceCellSource | ISetCellMetadata | IGraph | IStatus | IRuns | IRun;

// -- extension -> kernel ---------------------------------------------------
export interface IRunPipeline {
  type: 'run_pipeline';
  blocks?: string[];
}

export interface IRunBlock {
  type: 'run_block';
  name: string;
}

export interface IRequestGraph {
  type: 'request_graph';
}

/** Ask for one run's whole record (a click on the run in the Runs view); answered by `run`. */
export interface IRequestRun {
  type: 'request_run';
  id: number;
}

export type FrontendRequest = IRunPipeline | IRunBlock | IRequestGraph | IRequestRun;
