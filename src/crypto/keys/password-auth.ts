import { MatrixApiError, type MatrixHttp } from '../core/http.ts';

const PASSWORD = 'm.login.password';

/** The user's password did not get the request through; the message says what to do. */
export class PasswordAuthError extends Error {
  constructor(
    message: string,
    /** `wrong-password`, or `unsupported` when the homeserver offers no password-only flow. */
    readonly reason: 'wrong-password' | 'unsupported',
  ) {
    super(message);
    this.name = 'PasswordAuthError';
  }
}

/** A 401 answer of the user-interactive auth API: the flows on offer and the session. */
interface AuthChallenge {
  flows: { stages: string[] }[];
  session?: string;
}

function challengeOf(error: unknown): AuthChallenge | undefined {
  if (!(error instanceof MatrixApiError) || error.status !== 401) return undefined;
  const flows = error.body?.flows;
  if (!Array.isArray(flows)) return undefined; // e.g. M_UNKNOWN_TOKEN: not an auth challenge
  const session = error.body?.session;
  return {
    flows: flows.filter((flow): flow is { stages: string[] } => Array.isArray(flow?.stages)),
    session: typeof session === 'string' ? session : undefined,
  };
}

/**
 * Requests behind user-interactive authentication (Matrix spec "User-Interactive
 * Authentication API") completed with the account password, the one stage Kirjava can
 * offer (`m.login.password`, identified by the user id). A wrong password and a homeserver
 * that wants another stage (single sign-on, email, a captcha) end in a PasswordAuthError that
 * says so; the request then took no effect on the server.
 */
export class PasswordAuth {
  constructor(
    private readonly http: MatrixHttp,
    private readonly userId: string,
  ) {}

  /**
   * Sends `body` to `path`; when the homeserver asks for authentication, sends it again
   * with the password. Returns the answer and whether the password was checked (a homeserver
   * may let a request through without asking, e.g. a first cross-signing upload, MSC3967).
   */
  async request<T>(
    method: string,
    path: string,
    body: object,
    password: string,
  ): Promise<{ reply: T; asked: boolean }> {
    let challenge: AuthChallenge | undefined;
    try {
      return { reply: await this.http.request<T>(method, path, body), asked: false };
    } catch (error) {
      challenge = challengeOf(error);
      if (!challenge) throw error;
    }
    if (!challenge.flows.some((flow) => flow.stages.length === 1 && flow.stages[0] === PASSWORD)) {
      const offered = [...new Set(challenge.flows.flatMap((flow) => flow.stages))].join(', ') || 'none';
      throw new PasswordAuthError(
        `Your homeserver asks to confirm this with ${offered}, not with your password alone, which Kirjava cannot ` +
          'do yet: nothing was changed',
        'unsupported',
      );
    }
    const auth = {
      type: PASSWORD,
      identifier: { type: 'm.id.user', user: this.userId },
      password,
      ...(challenge.session === undefined ? {} : { session: challenge.session }),
    };
    try {
      return { reply: await this.http.request<T>(method, path, { ...body, auth }), asked: true };
    } catch (error) {
      // A failed stage is a 401 with the flows again and the stage's error (M_FORBIDDEN);
      // some servers answer 403.
      const forbidden = error instanceof MatrixApiError && error.errcode === 'M_FORBIDDEN';
      if (forbidden && (error.status === 403 || challengeOf(error))) {
        throw new PasswordAuthError('Wrong password: check it and try again (nothing was changed)', 'wrong-password');
      }
      throw error;
    }
  }
}
