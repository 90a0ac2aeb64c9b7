/**
 * One notebook's end of the jupyter_di comm.
 *
 * Owns: the comm to the notebook's kernel (opened again after a kernel change or restart),
 * applying the kernel's write-backs to the notebook model, and the pipeline state (blocks and
 * their statuses) that the badges and the side panel render.  One bridge per document context,
 * so two views of one notebook share it and an edit is applied once.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { INotebookModel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import {
  COMM_TARGET,
  FrontendRequest,
  IAck,
  IBlock,
  IRunRecord,
  IRunSummary,
  IStatus,
  KernelMessage as DIMessage,
  PROTOCOL_VERSION
} from './protocol';

/** What a comm sends: our messages are JSON objects (the interfaces of protocol.ts). */
type CommData = Parameters<Kernel.IComm['send']>[0];

/** Kernel statuses after which the kernel's comms are gone. */
const RESET_STATUSES: ReadonlyArray<Kernel.Status> = [
  'starting',
  'restarting',
  'autorestarting',
  'dead'
];

export class NotebookBridge {
  constructor(
    private readonly sessionContext: ISessionContext,
    private readonly getModel: () => INotebookModel | null
  ) {
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    sessionContext.statusChanged.connect(this._onStatusChanged, this);
    this._attach(sessionContext.session?.kernel ?? null);
  }

  /** True once the kernel acknowledged our hello on an open comm. */
  get connected(): boolean {
    return this._comm !== null && this._greeted;
  }

  /** Blocks from the kernel's last graph, with statuses applied; empty before any graph. */
  get blocks(): ReadonlyArray<IBlock> {
    return Array.from(this._blocks.values());
  }

  /** The newest runs of the run history, newest first; empty before the kernel sent them. */
  get runs(): ReadonlyArray<IRunSummary> {
    return this._runs;
  }

  /** The last run record the kernel sent (`request_run`), by the id asked for; null: no such run. */
  get runRecord(): { id: number; run: IRunRecord | null } | null {
    return this._runRecord;
  }

  /** Emitted when the blocks, their statuses, the runs or the connection change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted for every failed ack from the kernel (the panel shows it). */
  get failed(): ISignal<this, IAck> {
    return this._failed;
  }

  /** Send a request; false when no kernel with jupyter-di loaded is connected. */
  send(request: FrontendRequest): boolean {
    if (!this.connected || this._comm === null) {
      return false;
    }
    this._comm.send(request as unknown as CommData);
    return true;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.sessionContext.kernelChanged.disconnect(this._onKernelChanged, this);
    this.sessionContext.statusChanged.disconnect(this._onStatusChanged, this);
    this._detach();
    Signal.clearData(this);
  }

  // -- kernel lifecycle ----------------------------------------------------

  private _onKernelChanged(
    _: ISessionContext,
    change: { oldValue: Kernel.IKernelConnection | null; newValue: Kernel.IKernelConnection | null }
  ): void {
    this._detach();
    this._attach(change.newValue);
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (RESET_STATUSES.includes(status)) {
      // The kernel process is new or gone: its comms died with it, and the bridge in
      // the new process (if any) has not seen us yet.
      this._setComm(null);
      this._attempted = false;
      return;
    }
    if (status === 'idle' || status === 'busy') {
      this._tryOpen();
    }
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    this._kernel = kernel;
    this._attempted = false;
    if (kernel === null) {
      return;
    }
    kernel.registerCommTarget(COMM_TARGET, this._onKernelOpenedComm);
    if (kernel.status === 'idle' || kernel.status === 'busy') {
      this._tryOpen();
    }
  }

  private _detach(): void {
    if (this._kernel !== null && !this._kernel.isDisposed) {
      this._kernel.removeCommTarget(COMM_TARGET, this._onKernelOpenedComm);
    }
    this._kernel = null;
    this._setComm(null);
  }

  /**
   * Open a comm once per kernel process.  It fails (the kernel closes it) until the kernel
   * registered the target; then `%load_ext jupyter_di` opens one towards us instead.
   */
  private _tryOpen(): void {
    const kernel = this._kernel;
    if (this._attempted || this._comm !== null || kernel === null || kernel.isDisposed) {
      return;
    }
    this._attempted = true;
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(COMM_TARGET);
    } catch (error) {
      console.warn('jupyter-di: cannot open a comm', error);
      return;
    }
    // Before any await: the comm would otherwise start a subshell (see _onKernelOpenedComm).
    (comm as { commsOverSubshells?: unknown }).commsOverSubshells = 'disabled';
    this._listen(comm);
    this._setComm(comm);
    comm.open({ type: 'hello', version: PROTOCOL_VERSION });
  }

  /**
   * The kernel offers a comm (FrontendBridge.register ran, e.g. `%load_ext jupyter_di`): answer
   * by opening our own, then drop the offer.  Our own comm is opened with comms-over-subshells
   * disabled, so `run_pipeline`/`run_block` run on the kernel's main shell, in turn with cell
   * executions, never concurrently with them; a kernel-opened comm would get a subshell
   * (JupyterLab >= 4.6) before we could opt out.
   */
  private _onKernelOpenedComm = (offer: Kernel.IComm, _msg: KernelMessage.ICommOpenMsg): void => {
    this._setComm(null);
    this._attempted = false;
    this._tryOpen();
    try {
      offer.close();
    } catch {
      // already gone
    }
  };

  private _listen(comm: Kernel.IComm): void {
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      if (comm === this._comm) {
        this._handle(msg.content.data as unknown as DIMessage);
      }
    };
    comm.onClose = () => {
      if (comm === this._comm) {
        this._comm = null;
        this._greeted = false;
        this._changed.emit();
      }
    };
  }

  /** Make `comm` the current comm, closing the one it replaces. */
  private _setComm(comm: Kernel.IComm | null): void {
    const old = this._comm;
    this._comm = comm;
    this._greeted = false;
    if (old !== null && old !== comm && !old.isDisposed) {
      try {
        old.close();
      } catch {
        // the kernel is already gone
      }
    }
    this._changed.emit();
  }

  // -- messages ----------------------------------------------------------------

  private _handle(msg: DIMessage): void {
    switch (msg.type) {
      case 'ack':
        if (msg.request_type === 'hello' && msg.success) {
          this._greeted = true;
          this._changed.emit();
        } else if (!msg.success) {
          this._failed.emit(msg);
        }
        return;
      case 'replace_cell_source':
        this._reply(msg.type, () => {
          const cell = this._cell(msg.cell_id);
          // setSource runs in one shared-model transaction: one undoable edit.
          cell.sharedModel.setSource(msg.source);
        });
        return;
      case 'set_cell_metadata':
        this._reply(msg.type, () => {
          const cell = this._cell(msg.cell_id);
          if (msg.value === null) {
            cell.deleteMetadata(msg.key);
          } else {
            cell.setMetadata(msg.key, msg.value);
          }
        });
        return;
      case 'graph':
        this._blocks = new Map(msg.blocks.map(b => [b.name, { ...b }]));
        this._changed.emit();
        return;
      case 'status':
        this._applyStatus(msg);
        return;
      case 'runs':
        this._runs = msg.runs.slice();
        this._changed.emit();
        return;
      case 'run':
        this._runRecord = { id: msg.id, run: msg.run };
        this._changed.emit();
        return;
      default:
        return;
    }
  }

  private _applyStatus(msg: IStatus): void {
    const block = this._blocks.get(msg.name) ?? {
      name: msg.name,
      kind: 'python',
      upstream: [],
      cell_id: null,
      status: 'idle',
      duration_s: null,
      message: null
    };
    this._blocks.set(msg.name, {
      ...block,
      status: msg.status,
      duration_s: msg.duration_s,
      message: msg.message
    });
    this._changed.emit();
  }

  /** Run a write-back; tell the kernel only when it failed (it cannot wait for replies). */
  private _reply(requestType: string, apply: () => void): void {
    try {
      apply();
    } catch (error) {
      const ack: IAck = {
        type: 'ack',
        request_type: requestType,
        success: false,
        error: error instanceof Error ? error.message : String(error)
      };
      this._comm?.send(ack as unknown as CommData);
      this._failed.emit(ack);
    }
  }

  private _cell(cellId: string) {
    const model = this.getModel();
    if (model === null) {
      throw new Error('the notebook is not loaded');
    }
    for (const cell of model.cells) {
      if (cell.id === cellId) {
        return cell;
      }
    }
    throw new Error(`no cell with id '${cellId}' in this notebook`);
  }

  private _kernel: Kernel.IKernelConnection | null = null;
  private _comm: Kernel.IComm | null = null;
  private _greeted = false;
  private _attempted = false;
  private _disposed = false;
  private _blocks = new Map<string, IBlock>();
  private _runs: IRunSummary[] = [];
  private _runRecord: { id: number; run: IRunRecord | null } | null = null;
  private _changed = new Signal<this, void>(this);
  private _failed = new Signal<this, IAck>(this);
}
