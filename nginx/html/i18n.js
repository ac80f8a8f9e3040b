// wxkf console — every user-visible string, in one table.
// zh is the primary language; a key missing from a language falls back to
// en, and a key missing everywhere shows as itself (so it is noticed).
// Placeholders are {name}, filled by t(key, {name: value}).

export const STRINGS = {
    zh: {
        'app.title': '多客服工作台',
        'lang.label': '语言',
        'login.heading': '登录',
        'login.token': '令牌',
        'login.hint': '客服令牌（wxa_…）或管理员令牌',
        'login.submit': '登录',
        'login.checking': '正在验证…',
        'login.empty': '请输入令牌',
        'login.expired': '令牌无效或已失效，请重新登录',
        'logout': '退出',
        'role.admin': '管理员',
        'status.online': '在线',
        'status.paused': '暂停',
        'status.offline': '离线',
        'status.label': '状态',
        'conn.push': '实时',
        'conn.polling': '轮询',
        'conn.connecting': '连接中',
        'conn.down': '已断开',
        'load': '接待 {load}/{capacity}',
        'sessions.heading': '会话',
        'sessions.empty': '暂无会话',
        'sessions.waiting': '等待 {t}',
        'sessions.unread': '{n} 条未读',
        'conv.none': '选择左侧的会话',
        'conv.back': '返回',
        'conv.older': '加载更早的消息',
        'conv.loading': '加载中…',
        'conv.start': '没有更早的消息了',
        'conv.gone': '该会话已不再由您接待',
        'conv.transfer': '转接',
        'conv.close': '结束会话',
        'conv.close.confirm': '结束与该用户的会话？',
        'conv.closed': '会话已结束',
        'conv.transferred': '已转接：{result}',
        'transfer.heading': '转接会话',
        'transfer.kind': '转给',
        'transfer.to_agent': '客服',
        'transfer.to_group': '分组',
        'transfer.target': '客服账号或分组名',
        'transfer.submit': '转接',
        'cancel': '取消',
        'ok': '确定',
        'composer.placeholder': '输入回复，Enter 发送，Shift+Enter 换行',
        'composer.send': '发送',
        'composer.image': '图片',
        'composer.uploading': '正在上传图片…',
        'composer.badimage': '{name}：只能发送 2 MB 以内的 JPEG、PNG 或 GIF 图片',
        'msg.state.sending': '发送中',
        'msg.state.queued': '排队重试',
        'msg.state.sent': '已送达',
        'msg.state.failed': '失败',
        'msg.image': '[图片]',
        'msg.voice': '[语音]',
        'msg.video': '[视频]',
        'msg.media.pending': '媒体文件获取中…',
        'msg.media.failed': '媒体文件不可用：{why}',
        'msg.media.download': '下载',
        'msg.other': '[{type}]',
        'msg.location': '[位置] {label}',
        'msg.link': '[链接] {title}',
        'msg.event': '[事件] {event}',
        'msg.recognition': '识别：{text}',
        'err.network': '网络错误，请检查连接',
        'err.429': '尝试次数过多，请稍后再试',
        'err.generic': '出错了（HTTP {status}）',
        'err.wechat': '微信返回错误 {errcode}：{errmsg}',
        'err.wechat.code': '微信返回错误 {errcode}',
        'admin.heading': '管理',
        'admin.stats': '实时统计',
        'admin.agents': '客服',
        'admin.queue': '排队',
        'admin.sessions': '全部会话',
        'admin.refreshed': '更新于 {t}',
        'stat.agents': '客服',
        'stat.online': '在线',
        'stat.paused': '暂停',
        'stat.sessions_active': '进行中会话',
        'stat.waiting': '排队中',
        'stat.messages_today': '今日消息',
        'stat.first_response_median_ms': '首次响应中位数',
        'stat.online_rate': '在线率',
        'agents.account': '账号',
        'agents.nick': '昵称',
        'agents.status': '状态',
        'agents.load': '接待/上限',
        'agents.weight': '权重',
        'agents.groups': '分组',
        'agents.share': '累计分配',
        'agents.actions': '操作',
        'agents.empty': '暂无客服',
        'agents.edit': '编辑',
        'agents.token': '重置令牌',
        'agents.remove': '删除',
        'agents.add': '添加客服',
        'agents.add.submit': '添加',
        'agents.save': '保存',
        'agents.groups.hint': '逗号分隔，如 售前,售后',
        'agents.capacity.hint': '留空为默认',
        'agents.remove.confirm': '删除客服 {account}？',
        'agents.token.confirm': '为 {account} 签发新令牌？旧令牌将立即失效。',
        'agents.removed': '已删除 {account}',
        'agents.saved': '已保存 {account}',
        'agents.unavailable': '客服列表暂不可用：{msg}',
        'token.heading': '{account} 的令牌',
        'token.once': '令牌只显示这一次，请立即复制并妥善保存。',
        'token.copy': '复制',
        'token.copied': '已复制',
        'token.done': '我已保存',
        'queue.empty': '没有排队的用户',
        'group.all': '全部',
        'queue.group': '分组 {group}：{n} 人',
        'queue.position': '第 {n} 位',
        'sessions.all.empty': '没有会话',
        'col.openid': '用户',
        'col.state': '状态',
        'col.agent': '客服',
        'col.group': '分组',
        'col.opened': '开始',
        'col.last': '最近消息',
        'state.active': '进行中',
        'state.waiting': '排队',
        'dur.s': '{n}秒',
        'dur.m': '{m}分{s}秒',
        'dur.h': '{h}小时{m}分',
        'none': '—',
    },
    en: {
        'app.title': 'Customer service console',
        'lang.label': 'Language',
        'login.heading': 'Sign in',
        'login.token': 'Token',
        'login.hint': 'Agent token (wxa_…) or admin token',
        'login.submit': 'Sign in',
        'login.checking': 'Checking…',
        'login.empty': 'Enter a token',
        'login.expired': 'The token is invalid or was revoked; sign in again',
        'logout': 'Sign out',
        'role.admin': 'Administrator',
        'status.online': 'Online',
        'status.paused': 'Paused',
        'status.offline': 'Offline',
        'status.label': 'Status',
        'conn.push': 'Live',
        'conn.polling': 'Polling',
        'conn.connecting': 'Connecting',
        'conn.down': 'Disconnected',
        'load': 'Serving {load}/{capacity}',
        'sessions.heading': 'Sessions',
        'sessions.empty': 'No sessions',
        'sessions.waiting': 'waiting {t}',
        'sessions.unread': '{n} unread',
        'conv.none': 'Pick a session',
        'conv.back': 'Back',
        'conv.older': 'Load older messages',
        'conv.loading': 'Loading…',
        'conv.start': 'No older messages',
        'conv.gone': 'You no longer serve this user',
        'conv.transfer': 'Transfer',
        'conv.close': 'Close session',
        'conv.close.confirm': 'Close the session with this user?',
        'conv.closed': 'Session closed',
        'conv.transferred': 'Transferred: {result}',
        'transfer.heading': 'Transfer the session',
        'transfer.kind': 'To',
        'transfer.to_agent': 'Agent',
        'transfer.to_group': 'Group',
        'transfer.target': 'Agent account or group name',
        'transfer.submit': 'Transfer',
        'cancel': 'Cancel',
        'ok': 'OK',
        'composer.placeholder': 'Type a reply; Enter sends, Shift+Enter for a new line',
        'composer.send': 'Send',
        'composer.image': 'Image',
        'composer.uploading': 'Uploading the image…',
        'composer.badimage': '{name}: only JPEG, PNG or GIF images up to 2 MB can be sent',
        'msg.state.sending': 'Sending',
        'msg.state.queued': 'Queued',
        'msg.state.sent': 'Sent',
        'msg.state.failed': 'Failed',
        'msg.image': '[image]',
        'msg.voice': '[voice]',
        'msg.video': '[video]',
        'msg.media.pending': 'Fetching the media…',
        'msg.media.failed': 'Media unavailable: {why}',
        'msg.media.download': 'Download',
        'msg.other': '[{type}]',
        'msg.location': '[location] {label}',
        'msg.link': '[link] {title}',
        'msg.event': '[event] {event}',
        'msg.recognition': 'Recognised: {text}',
        'err.network': 'Network error; check the connection',
        'err.429': 'Too many attempts; wait a moment and try again',
        'err.generic': 'Something went wrong (HTTP {status})',
        'err.wechat': 'WeChat error {errcode}: {errmsg}',
        'err.wechat.code': 'WeChat error {errcode}',
        'admin.heading': 'Administration',
        'admin.stats': 'Live statistics',
        'admin.agents': 'Agents',
        'admin.queue': 'Waiting queue',
        'admin.sessions': 'All sessions',
        'admin.refreshed': 'Updated {t}',
        'stat.agents': 'Agents',
        'stat.online': 'Online',
        'stat.paused': 'Paused',
        'stat.sessions_active': 'Active sessions',
        'stat.waiting': 'Waiting',
        'stat.messages_today': 'Messages today',
        'stat.first_response_median_ms': 'Median first response',
        'stat.online_rate': 'Online rate',
        'agents.account': 'Account',
        'agents.nick': 'Nickname',
        'agents.status': 'Status',
        'agents.load': 'Load/capacity',
        'agents.weight': 'Weight',
        'agents.groups': 'Groups',
        'agents.share': 'Assigned',
        'agents.actions': 'Actions',
        'agents.empty': 'No agents',
        'agents.edit': 'Edit',
        'agents.token': 'New token',
        'agents.remove': 'Remove',
        'agents.add': 'Add an agent',
        'agents.add.submit': 'Add',
        'agents.save': 'Save',
        'agents.groups.hint': 'comma separated, e.g. sales,after-sales',
        'agents.capacity.hint': 'empty = default',
        'agents.remove.confirm': 'Remove agent {account}?',
        'agents.token.confirm': 'Issue a new token for {account}? The old one stops working at once.',
        'agents.removed': 'Removed {account}',
        'agents.saved': 'Saved {account}',
        'agents.unavailable': 'The agent list is unavailable: {msg}',
        'token.heading': 'Token of {account}',
        'token.once': 'The token is shown only this once: copy it now and keep it safe.',
        'token.copy': 'Copy',
        'token.copied': 'Copied',
        'token.done': 'I saved it',
        'queue.empty': 'Nobody is waiting',
        'group.all': 'all',
        'queue.group': 'Group {group}: {n}',
        'queue.position': '#{n}',
        'sessions.all.empty': 'No sessions',
        'col.openid': 'User',
        'col.state': 'State',
        'col.agent': 'Agent',
        'col.group': 'Group',
        'col.opened': 'Opened',
        'col.last': 'Last message',
        'state.active': 'active',
        'state.waiting': 'waiting',
        'dur.s': '{n}s',
        'dur.m': '{m}m {s}s',
        'dur.h': '{h}h {m}m',
        'none': '—',
    },
};

export const LANGS = [['zh', '中文'], ['en', 'English']];
const LANG_KEY = 'wxkf.lang';
let lang = pickLang();

function pickLang() {
    let saved = null;
    try {
        saved = localStorage.getItem(LANG_KEY);
    } catch (e) {
        saved = null;
    }
    if (saved && STRINGS[saved])
        return saved;
    const prefs = navigator.languages && navigator.languages.length ?
        navigator.languages : [navigator.language || 'en'];
    for (const p of prefs) {
        const base = String(p).toLowerCase().split('-')[0];
        if (STRINGS[base])
            return base;
    }
    return 'en';
}

export function getLang() {
    return lang;
}

export function setLang(l) {
    if (!STRINGS[l])
        return;
    lang = l;
    try {
        localStorage.setItem(LANG_KEY, l);
    } catch (e) {
        /* private mode: the choice lasts for this page only */
    }
    document.documentElement.lang = l === 'zh' ? 'zh-CN' : l;
}

export function t(key, params) {
    let s = STRINGS[lang][key];
    if (s === undefined)
        s = STRINGS.en[key];
    if (s === undefined)
        return key;
    if (params) {
        s = s.replace(/\{(\w+)\}/g, (m, name) =>
            (params[name] === undefined || params[name] === null) ?
                m : String(params[name]));
    }
    return s;
}

// Static markup: data-i18n (text), data-i18n-placeholder, data-i18n-title,
// data-i18n-aria (aria-label). Text only: never markup.
export function applyI18n(root) {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : lang;
    for (const el of root.querySelectorAll('[data-i18n]'))
        el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll('[data-i18n-placeholder]'))
        el.placeholder = t(el.dataset.i18nPlaceholder);
    for (const el of root.querySelectorAll('[data-i18n-title]'))
        el.title = t(el.dataset.i18nTitle);
    for (const el of root.querySelectorAll('[data-i18n-aria]'))
        el.setAttribute('aria-label', t(el.dataset.i18nAria));
}
