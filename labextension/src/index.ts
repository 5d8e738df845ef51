/**
 * A status-bar item showing the state of the user's Kerberos ticket, as
 * reported by the pamkrb server extension at `<base url>pamkrb/api/status`,
 * and a Help-menu entry opening the human page at `<base url>pamkrb/status`.
 *
 * A ticket obtained from the login password can be renewed only until its
 * `renew_until`; then the user must sign in again. The item warns
 * `warn_before` seconds ahead, and clicking it (or the Help-menu entry) asks
 * for the password and posts it to `<base url>pamkrb/api/signin`, which
 * replaces the ticket without restarting the server or its kernels.
 *
 * When the KDC reported the password's own expiry at the last login (an
 * Active Directory KDC does on every login: `password_expires_at`), the item
 * adds "password expires in N days" in the last two weeks.
 *
 * Both UIs load this one plugin: JupyterLab 4 always has a status bar,
 * Notebook 7 only in some views, so the status bar and the main menu are
 * optional and whatever is missing is simply not used.
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Poll } from '@lumino/polling';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import {
  IServerStatus,
  RENEWERS,
  Renewer,
  SERVER_STATES,
  SOURCES,
  ServerState
} from './status';

const STATUS_API_PATH = 'pamkrb/api/status';
const STATUS_PAGE_PATH = 'pamkrb/status';
const POLL_INTERVAL_MS = 30_000;
const SIGNIN_API_PATH = 'pamkrb/api/signin';
const OPEN_STATUS_COMMAND = 'pamkrb:open-status';
const SIGN_IN_COMMAND = 'pamkrb:sign-in';
/** The dialog's password field; browser tests find it by this id. */
const SIGNIN_PASSWORD_ID = 'pamkrb-signin-password';

/** The states the server extension reports, plus our own for "no answer". */
type TicketState = ServerState | 'unavailable';

const KNOWN_STATES: ReadonlySet<string> = new Set(SERVER_STATES);

/**
 * What the status bar reads of a server status. The fields and their types
 * come from the schema (./status.ts is generated from
 * python/pamkrb/status.schema.json), so a field added there must be read
 * here before this compiles; the counters are for people, on the status page.
 */
interface ITicketStatus
  extends Omit<
    IServerStatus,
    'state' | 'refresh_margin' | 'renewals' | 'triggers'
  > {
  state: TicketState;
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
  login_required_at: null,
  warn_before: null,
  password_expires_at: null,
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
  const seconds = (key: string): number | null =>
    typeof raw[key] === 'number' && Number.isFinite(raw[key])
      ? (raw[key] as number)
      : null;
  const state = text('state');
  if (state === null || !KNOWN_STATES.has(state)) {
    return UNAVAILABLE;
  }
  return {
    state: state as TicketState,
    principal: text('principal'),
    ccache: text('ccache'),
    expires_at: text('expires_at'),
    seconds_left: seconds('seconds_left'),
    renew_until: text('renew_until'),
    renewed_by: oneOf('renewed_by', RENEWERS),
    source: oneOf('source', SOURCES),
    login_required_at: text('login_required_at'),
    warn_before: seconds('warn_before'),
    password_expires_at: text('password_expires_at'),
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

/**
 * When the user must sign in again, if that is close enough to warn about:
 * `login_required_at` is at most `warn_before` seconds away (or past) and the
 * server does not already say so. Null otherwise, and when `warn_before` is
 * null (the server asks for no warning).
 */
function signInDeadline(status: ITicketStatus, now: Date): Date | null {
  const deadline = parseTime(status.login_required_at);
  if (
    deadline === null ||
    status.warn_before === null ||
    ['login_required', 'disabled', 'unavailable'].includes(status.state)
  ) {
    return null;
  }
  const left = (deadline.getTime() - now.getTime()) / 1000;
  return left <= status.warn_before ? deadline : null;
}

/** Whether clicking the item should ask for the password. */
function offersSignIn(status: ITicketStatus, now: Date): boolean {
  return (
    status.state === 'login_required' ||
    status.source === 'password' ||
    signInDeadline(status, now) !== null
  );
}

/** How long a password expiry is announced ahead, in days. */
const PASSWORD_WARNING_DAYS = 14;

/**
 * " · password expires in N days" when the KDC reported the user's password
 * expiry (Active Directory) and it is at most PASSWORD_WARNING_DAYS away;
 * "" otherwise. Whole days, rounded up, so "in 0 days" is never shown
 * before the password has actually expired.
 */
function passwordExpiry(status: ITicketStatus, now: Date): string {
  const when = parseTime(status.password_expires_at);
  if (when === null) {
    return '';
  }
  const days = Math.ceil((when.getTime() - now.getTime()) / 86_400_000);
  if (days > PASSWORD_WARNING_DAYS) {
    return '';
  }
  if (days <= 0) {
    return ' · password expired';
  }
  return ` · password expires in ${days} day${days === 1 ? '' : 's'}`;
}

function label(status: ITicketStatus, now: Date): string {
  const text = ticketLabel(status, now);
  return text === '' ? text : text + passwordExpiry(status, now);
}

function ticketLabel(status: ITicketStatus, now: Date): string {
  const expires = parseTime(status.expires_at);
  const deadline = signInDeadline(status, now);
  if (deadline !== null) {
    return `Kerberos: sign in again before ${shortTime(deadline)}`;
  }
  switch (status.state) {
    case 'valid': {
      // A password ticket is renewed only up to renew_until, so that, not
      // the next renewal, is the time the user needs to know.
      const loginRequired = parseTime(status.login_required_at);
      let valid: string;
      if (status.source === 'password' && loginRequired !== null) {
        valid = `Kerberos: renewable until ${shortTime(loginRequired)}`;
      } else {
        valid = expires
          ? `Kerberos: valid until ${shortTime(expires)}`
          : 'Kerberos: valid';
      }
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
    case 'login_required':
      return 'Kerberos: expired — sign in again';
    case 'unavailable':
      return 'Kerberos: status unavailable';
  }
}

const RENEWER_NAMES: Record<Renewer, string> = {
  server: 'this server',
  hub: 'the hub'
};

function tooltip(status: ITicketStatus, signIn: boolean): string {
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
  if (status.login_required_at !== null) {
    lines.push(`Sign-in needed by: ${when(status.login_required_at)}`);
  }
  if (status.password_expires_at !== null) {
    lines.push(`Password expires: ${when(status.password_expires_at)}`);
  }
  lines.push(`Last refresh: ${when(status.last_refresh)}`);
  if (status.last_error !== null) {
    lines.push(`Last error: ${status.last_error}`);
  }
  lines.push(signIn ? 'Click to sign in again.' : 'Click for details.');
  return lines.join('\n');
}

/**
 * The sign-in dialog's body: one password field. The dialog reads it once,
 * on accept; it is emptied then and when the dialog closes, so the password
 * does not linger in the DOM.
 */
class PasswordField extends Widget {
  constructor(principal: string | null) {
    super();
    this.addClass('pamkrb-signin');
    const prompt = document.createElement('label');
    prompt.htmlFor = SIGNIN_PASSWORD_ID;
    prompt.textContent =
      `Your login password${principal ? ` for ${principal}` : ''} gets a new ` +
      'Kerberos ticket. Running kernels keep going.';
    this._input = document.createElement('input');
    this._input.type = 'password';
    this._input.id = SIGNIN_PASSWORD_ID;
    this._input.name = 'password';
    this._input.autocomplete = 'current-password';
    this._input.className = 'jp-mod-styled';
    this.node.append(prompt, this._input);
  }

  /** Called by Dialog on accept only. */
  getValue(): string {
    const password = this._input.value;
    this._input.value = '';
    return password;
  }

  dispose(): void {
    this._input.value = '';
    super.dispose();
  }

  private readonly _input: HTMLInputElement;
}

/** How a `POST pamkrb/api/signin` ended; `retry` asks for the password again. */
type SignInOutcome =
  | { ok: true }
  | { ok: false; message: string; retry: boolean };

async function postPassword(
  settings: ServerConnection.ISettings,
  password: string
): Promise<SignInOutcome> {
  let response: Response;
  try {
    // makeRequest adds the XSRF token the server checks on a POST.
    response = await ServerConnection.makeRequest(
      URLExt.join(settings.baseUrl, SIGNIN_API_PATH),
      { method: 'POST', body: JSON.stringify({ password }) },
      settings
    );
  } catch {
    return {
      ok: false,
      message: 'The server could not be reached; try again.',
      retry: false
    };
  }
  if (response.ok) {
    return { ok: true };
  }
  switch (response.status) {
    case 403:
      return {
        ok: false,
        message: 'The password was not accepted.',
        retry: true
      };
    case 429:
      return {
        ok: false,
        message: 'Too many attempts; try again in a minute.',
        retry: false
      };
  }
  let message = `Sign-in failed (HTTP ${response.status}).`;
  try {
    const body = (await response.json()) as { message?: unknown };
    if (typeof body.message === 'string' && body.message) {
      message = body.message;
    }
  } catch {
    // Not JSON (a proxy's error page): the status code will do.
  }
  return { ok: false, message, retry: false };
}

/**
 * Asks for the login password and hands it to the server extension, which
 * replaces the ticket in place. One dialog at a time, however often the item
 * or the command is activated.
 */
class KerberosSignIn {
  constructor(private readonly _settings: ServerConnection.ISettings) {}

  /** Called after a successful sign-in: re-read the status now. */
  onSignedIn: (() => void) | null = null;

  async run(principal: string | null): Promise<void> {
    if (this._running) {
      return;
    }
    this._running = true;
    try {
      await this._prompt(principal);
    } finally {
      this._running = false;
    }
  }

  private async _prompt(principal: string | null): Promise<void> {
    for (;;) {
      const result = await showDialog({
        title: 'Kerberos sign-in',
        body: new PasswordField(principal),
        buttons: [
          Dialog.cancelButton({ label: 'Cancel' }),
          Dialog.okButton({ label: 'Sign in' })
        ],
        focusNodeSelector: `#${SIGNIN_PASSWORD_ID}`
      });
      if (!result.button.accept) {
        return;
      }
      if (!result.value) {
        continue; // Nothing typed: ask again rather than spend an attempt.
      }
      const outcome = await postPassword(this._settings, result.value);
      if (outcome.ok) {
        this.onSignedIn?.();
        Notification.success('Signed in: the Kerberos ticket was renewed.', {
          autoClose: 5000
        });
        return;
      }
      await showErrorMessage('Kerberos sign-in', outcome.message);
      if (!outcome.retry) {
        return;
      }
    }
  }

  private _running = false;
}

/**
 * The status-bar widget; `refresh()` fetches and renders. Activating it
 * asks for the password when the ticket came from one (or a sign-in is
 * needed), and opens the status page otherwise.
 */
class KerberosStatus extends Widget {
  constructor(
    private readonly _settings: ServerConnection.ISettings,
    private readonly _openPage: () => void,
    private readonly _signIn: KerberosSignIn
  ) {
    super({ node: document.createElement('div') });
    this.id = 'pamkrb-status';
    this.addClass('pamkrb-status');
    this.addClass('jp-StatusBar-TextItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', this._activate);
    this.node.addEventListener('keydown', (event: KeyboardEvent) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this._activate();
      }
    });
    this._render(UNAVAILABLE);
  }

  /** Emitted when `visible` may have changed; the status bar re-asks. */
  readonly visibilityChanged = new Signal<this, void>(this);

  get visible(): boolean {
    return this._status.state !== 'disabled';
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

  private readonly _activate = (): void => {
    if (offersSignIn(this._status, new Date())) {
      void this._signIn.run(this._status.principal);
    } else {
      this._openPage();
    }
  };

  private _render(status: ITicketStatus): void {
    const wasVisible = this.visible;
    const now = new Date();
    this._status = status;
    const signInSoon = signInDeadline(status, now) !== null;
    const warning =
      signInSoon ||
      !['valid', 'disabled', 'unavailable'].includes(status.state);
    this.node.dataset.pamkrbState = status.state;
    this.node.textContent = label(status, now);
    this.node.title = tooltip(status, offersSignIn(status, now));
    this.toggleClass('pamkrb-warning', warning);
    if (wasVisible !== this.visible) {
      this.visibilityChanged.emit();
    }
  }

  private _status: ITicketStatus = UNAVAILABLE;
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
    const signIn = new KerberosSignIn(settings);

    app.commands.addCommand(OPEN_STATUS_COMMAND, {
      label: 'Kerberos ticket status',
      caption: 'Open the Kerberos ticket status page in a new tab',
      execute: openPage
    });
    // Offered everywhere, not only where the status says "password": the
    // status bar may be hidden (Notebook 7) or the status unreadable, and a
    // server without the sign-in endpoint answers with an error message.
    app.commands.addCommand(SIGN_IN_COMMAND, {
      label: 'Sign in to Kerberos again…',
      caption: 'Get a new Kerberos ticket from your login password',
      execute: () => signIn.run(null)
    });
    mainMenu?.helpMenu.addGroup(
      [{ command: OPEN_STATUS_COMMAND }, { command: SIGN_IN_COMMAND }],
      30
    );

    if (!statusBar) {
      return;
    }
    const item = new KerberosStatus(settings, openPage, signIn);
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
    // The new ticket is the news the user is waiting for: show it now, not
    // at the next tick.
    signIn.onSignedIn = () => void poll.refresh();
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
