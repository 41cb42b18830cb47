/** The one endpoint Taobao posts its e-voucher notices to. */
import type { HttpServer } from '../http/http-server';
import type { NoticeIntake } from './notice-intake';

export const TAOBAO_NOTICE_PATH = '/taobao/notices';

export function taobaoNoticeRoutes(http: HttpServer, intake: NoticeIntake): void {
  http.route('POST', TAOBAO_NOTICE_PATH, async (req) => {
    const answer = await intake.receive(req.rawBody, headerText(req.headers['content-type']));
    return { status: answer.status, body: answer.body, contentType: 'application/json; charset=utf-8' };
  });
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
