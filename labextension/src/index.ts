/**
 * A status-bar item showing the state of the user's Kerberos ticket, as
 * reported by the pamkrb server extension at `<base url>pamkrb/api/status`,
 * and a Help-menu entry opening the human page at `<base url>pamkrb/status`.
 *
 * Both UIs load this one plugin: JupyterLab 4 always has a status bar,
 * Notebook 7 only in some views, so the status bar and the main menu are
 * optional and whatever is missing is simply not used.
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Poll } from '@lumino/polling';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

const STATUS_API_PATH = 'pamkrb/api/status';
const STATUS_PAGE_PATH = 'pamkrb/status';
const POLL_INTERVAL_MS = 30_000;
const OPEN_STATUS_COMMAND = 'pamkrb:open-status';

/** The states the server extension reports, plus our own for "no answer". */
type TicketState =
  | 'valid'
  | 'expiring'
  | 'expired'
  | 'missing'
  | 'error'
  | 'disabled'
  | 'unavailable';

const SERVER_STATES: ReadonlySet<string> = new Set([
  'valid',
  'expiring',
  'expired',
  'missing',
  'error',
  'disabled'
]);

/**
 * Who keeps the ticket fresh: this server from its keytab, or the hub's
 * ticket broker, which renews it and delivers it here. The status reports
 * null when disabled.
 */
const RENEWERS = ['server', 'hub'] as const;
type RenewedBy = (typeof RENEWERS)[number];

/** Where the ticket comes from; null when disabled. */
const SOURCES = ['keytab', 'password'] as const;
type TicketSource = (typeof SOURCES)[number];

/** The JSON body of `GET pamkrb/api/status`. */
interface ITicketStatus {
  state: TicketState;
  principal: string | null;
  ccache: string | null;
  expires_at: string | null;
  seconds_left: number | null;
  renew_until: string | null;
  renewed_by: RenewedBy | null;
  source: TicketSource | null;
  last_refresh: string | null;
  last_error: string | null;
  refresh_margin?: number;
  renewals?: number;
}

const UNAVAILABLE: ITicketStatus = {
  state: 'unavailable',
  principal: null,
  ccache: null,
  expires_at: null,
  seconds_left: null,
  renew_until: null,
  renewed_by: null,
  source: null,
  last_refresh: null,
  last_error: null
};

function parseStatus(body: unknown): ITicketStatus {
  if (typeof body !== 'object' || body === null) {
    return UNAVAILABLE;
  }
  const raw = body as Record<string, unknown>;
  const text = (key: string): string | null =>
    typeof raw[key] === 'string' ? (raw[key] as string) : null;
  // A value this build does not know (a newer server) reads as null, so the
  // status bar never claims more than it understands.
  const oneOf = <T extends string>(
    key: string,
    known: readonly T[]
  ): T | null => {
    const value = text(key);
    return known.find(candidate => candidate === value) ?? null;
  };
  const state = text('state');
  if (state === null || !SERVER_STATES.has(state)) {
    return UNAVAILABLE;
  }
  return {
    state: state as TicketState,
    principal: text('principal'),
    ccache: text('ccache'),
    expires_at: text('expires_at'),
    seconds_left:
      typeof raw.seconds_left === 'number' ? raw.seconds_left : null,
    renew_until: text('renew_until'),
    renewed_by: oneOf('renewed_by', RENEWERS),
    source: oneOf('source', SOURCES),
    last_refresh: text('last_refresh'),
    last_error: text('last_error')
  };
}

function parseTime(iso: string | null): Date | null {
  if (iso === null) {
    return null;
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/**
 * Local "HH:MM", prefixed with "YYYY-MM-DD " when not today. Built by hand
 * rather than with toLocaleTimeString so the status bar stays short (no
 * seconds, no AM/PM) and browser tests can match it.
 */
function shortTime(date: Date): string {
  const hhmm = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  const now = new Date();
  const today =
    date.getFullYear() === now.getFullYear() &&
    date.getMonth() === now.getMonth() &&
    date.getDate() === now.getDate();
  if (today) {
    return hhmm;
  }
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${hhmm}`;
}

function label(status: ITicketStatus): string {
  const expires = parseTime(status.expires_at);
  switch (status.state) {
    case 'valid': {
      const valid = expires
        ? `Kerberos: valid until ${shortTime(expires)}`
        : 'Kerberos: valid';
      // Said up front because this server does not renew a hub-delivered
      // ticket: it stays valid only as long as the hub keeps delivering.
      return status.renewed_by === 'hub'
        ? `${valid} (renewed by hub)`
        : valid;
    }
    case 'expiring':
      return expires
        ? `Kerberos: expiring ${shortTime(expires)}`
        : 'Kerberos: expiring';
    case 'expired':
      return 'Kerberos: expired';
    case 'missing':
      return 'Kerberos: no ticket';
    case 'error':
      return 'Kerberos: renewal failed';
    case 'disabled':
      return '';
    case 'unavailable':
      return 'Kerberos: status unavailable';
  }
}

const RENEWER_NAMES: Record<RenewedBy, string> = {
  server: 'this server',
  hub: 'the hub'
};

function tooltip(status: ITicketStatus): string {
  if (status.state === 'unavailable') {
    return 'The Kerberos ticket status could not be read from the server.';
  }
  const when = (iso: string | null): string =>
    parseTime(iso)?.toLocaleString() ?? 'never';
  const lines = [
    `Principal: ${status.principal ?? 'none'}`,
    `Cache: ${status.ccache ?? 'none'}`
  ];
  if (status.renewed_by !== null) {
    lines.push(`Renewed by: ${RENEWER_NAMES[status.renewed_by]}`);
  }
  if (status.source !== null) {
    lines.push(`Source: ${status.source}`);
  }
  if (status.expires_at !== null) {
    lines.push(`Expires: ${when(status.expires_at)}`);
  }
  if (status.renew_until !== null) {
    lines.push(`Renewable until: ${when(status.renew_until)}`);
  }
  lines.push(`Last refresh: ${when(status.last_refresh)}`);
  if (status.last_error !== null) {
    lines.push(`Last error: ${status.last_error}`);
  }
  lines.push('Click for details.');
  return lines.join('\n');
}

/** The status-bar widget; `refresh()` fetches and renders. */
class KerberosStatus extends Widget {
  constructor(
    private readonly _settings: ServerConnection.ISettings,
    private readonly _openPage: () => void
  ) {
    super({ node: document.createElement('div') });
    this.id = 'pamkrb-status';
    this.addClass('pamkrb-status');
    this.addClass('jp-StatusBar-TextItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', this._openPage);
    this.node.addEventListener('keydown', (event: KeyboardEvent) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this._openPage();
      }
    });
    this._render(UNAVAILABLE);
  }

  /** Emitted when `visible` may have changed; the status bar re-asks. */
  readonly visibilityChanged = new Signal<this, void>(this);

  get visible(): boolean {
    return this._state !== 'disabled';
  }

  /**
   * Fetch and render the status. Never rejects: any failure is shown as
   * "unavailable". Returns false when the endpoint does not exist, so the
   * caller can stop polling a server without the pamkrb server extension.
   */
  async refresh(): Promise<boolean> {
    const url = URLExt.join(this._settings.baseUrl, STATUS_API_PATH);
    let status = UNAVAILABLE;
    let found = true;
    try {
      const response = await ServerConnection.makeRequest(
        url,
        {},
        this._settings
      );
      if (response.ok) {
        status = parseStatus(await response.json());
      } else {
        found = response.status !== 404;
      }
    } catch {
      // Network error or a body that is not JSON: shown as unavailable.
    }
    if (!this.isDisposed) {
      this._render(status);
    }
    return found;
  }

  private _render(status: ITicketStatus): void {
    const wasVisible = this.visible;
    this._state = status.state;
    const warning = !['valid', 'disabled', 'unavailable'].includes(
      status.state
    );
    this.node.dataset.pamkrbState = status.state;
    this.node.textContent = label(status);
    this.node.title = tooltip(status);
    this.toggleClass('pamkrb-warning', warning);
    if (wasVisible !== this.visible) {
      this.visibilityChanged.emit();
    }
  }

  private _state: TicketState = 'unavailable';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'pamkrb:status',
  description: 'Shows the Kerberos ticket kept fresh by jupyterhub-pamkrb.',
  autoStart: true,
  optional: [IStatusBar, IMainMenu],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    mainMenu: IMainMenu | null
  ): void => {
    const settings = ServerConnection.makeSettings();
    const pageUrl = URLExt.join(settings.baseUrl, STATUS_PAGE_PATH);
    const openPage = (): void => {
      window.open(pageUrl, '_blank', 'noopener');
    };

    app.commands.addCommand(OPEN_STATUS_COMMAND, {
      label: 'Kerberos ticket status',
      caption: 'Open the Kerberos ticket status page in a new tab',
      execute: openPage
    });
    mainMenu?.helpMenu.addGroup([{ command: OPEN_STATUS_COMMAND }], 30);

    if (!statusBar) {
      return;
    }
    const item = new KerberosStatus(settings, openPage);
    statusBar.registerStatusItem(plugin.id, {
      item,
      align: 'left',
      rank: 100,
      isActive: () => item.visible,
      activeStateChanged: item.visibilityChanged
    });

    const poll = new Poll({
      factory: async () => {
        if (!(await item.refresh())) {
          // No server extension behind this URL (404): polling would only
          // fill the browser console with failed requests.
          void poll.stop();
        }
      },
      frequency: { interval: POLL_INTERVAL_MS, backoff: false },
      name: 'pamkrb:status',
      standby: 'when-hidden'
    });
    // A save is when the server extension refreshes the ticket, so the
    // status is worth re-reading then instead of up to 30 s later.
    app.serviceManager.contents.fileChanged.connect((_, change) => {
      if (change.type === 'save' && poll.state.phase !== 'stopped') {
        void poll.refresh();
      }
    });
  }
};

export default plugin;
