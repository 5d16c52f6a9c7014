/**
 * The account's own account data (Matrix spec "Client Config": `GET`/`PUT
 * /user/{userId}/account_data/{type}`), where secret storage keeps its keys and secrets.
 */
import { MatrixApiError, type MatrixHttp, seg } from '../core/http.ts';

/** The content of the account data of `type`, or undefined when the account has none. */
export async function readAccountData<T>(http: MatrixHttp, userId: string, type: string): Promise<T | undefined> {
  try {
    return await http.request<T>('GET', `/user/${seg(userId)}/account_data/${seg(type)}`);
  } catch (error) {
    if (error instanceof MatrixApiError && error.errcode === 'M_NOT_FOUND') return undefined;
    throw error;
  }
}

/** Writes the account data of `type`. */
export async function writeAccountData(http: MatrixHttp, userId: string, type: string, content: object): Promise<void> {
  await http.request('PUT', `/user/${seg(userId)}/account_data/${seg(type)}`, content);
}
