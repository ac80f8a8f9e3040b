// wxkf console — a message's text in pieces: WeChat's emoji codes as
// Unicode emoji, and web links (pure: no DOM, no imports; conv.js makes
// the nodes, test/browser/units.test.mjs runs it in node).
//
// WeChat sends its classic faces (the QQ set) inside text as codes such as
// "/::)" (and newer clients as names such as "[微笑]"). The codes and
// names below are WeChat's own: ids 0-104 of the emoji table its article
// pages' scripts carry (module biz_common/utils/emoji_data.js; each row
// has id, cn "[微笑]", us "[Smile]", code "/::)"). The Unicode emoji for
// each is our choice of the nearest one.

// [code, name, emoji], in WeChat's order (id 0..104)
export const FACES = [
    ['/::)', '微笑', '🙂'], ['/::~', '撇嘴', '😖'], ['/::B', '色', '😍'],
    ['/::|', '发呆', '😳'], ['/:8-)', '得意', '😎'], ['/::<', '流泪', '😭'],
    ['/::$', '害羞', '😊'], ['/::X', '闭嘴', '🤐'], ['/::Z', '睡', '😴'],
    ['/::\'(', '大哭', '😭'], ['/::-|', '尴尬', '😅'], ['/::@', '发怒', '😡'],
    ['/::P', '调皮', '😜'], ['/::D', '呲牙', '😁'], ['/::O', '惊讶', '😲'],
    ['/::(', '难过', '🙁'], ['/::+', '酷', '😎'], ['/:--b', '冷汗', '😓'],
    ['/::Q', '抓狂', '😫'], ['/::T', '吐', '🤮'], ['/:,@P', '偷笑', '🤭'],
    ['/:,@-D', '愉快', '😄'], ['/::d', '白眼', '🙄'], ['/:,@o', '傲慢', '😤'],
    ['/::g', '饥饿', '🤤'], ['/:|-)', '困', '😪'], ['/::!', '惊恐', '😱'],
    ['/::L', '流汗', '😓'], ['/::>', '憨笑', '😄'], ['/::,@', '悠闲', '😌'],
    ['/:,@f', '奋斗', '💪'], ['/::-S', '咒骂', '🤬'], ['/:?', '疑问', '❓'],
    ['/:,@x', '嘘', '🤫'], ['/:,@@', '晕', '😵'], ['/::8', '疯了', '🤪'],
    ['/:,@!', '衰', '😩'], ['/:!!!', '骷髅', '💀'], ['/:xx', '敲打', '🔨'],
    ['/:bye', '再见', '👋'], ['/:wipe', '擦汗', '😥'], ['/:dig', '抠鼻', '👃'],
    ['/:handclap', '鼓掌', '👏'], ['/:&-(', '糗大了', '😖'], ['/:B-)', '坏笑', '😏'],
    ['/:<@', '左哼哼', '😤'], ['/:@>', '右哼哼', '😤'], ['/::-O', '哈欠', '🥱'],
    ['/:>-|', '鄙视', '😒'], ['/:P-(', '委屈', '🥺'], ['/::\'|', '快哭了', '😢'],
    ['/:X-)', '阴险', '😈'], ['/::*', '亲亲', '😘'], ['/:@x', '吓', '😨'],
    ['/:8*', '可怜', '🥺'], ['/:pd', '菜刀', '🔪'], ['/:<W>', '西瓜', '🍉'],
    ['/:beer', '啤酒', '🍺'], ['/:basketb', '篮球', '🏀'], ['/:oo', '乒乓', '🏓'],
    ['/:coffee', '咖啡', '☕'], ['/:eat', '饭', '🍚'], ['/:pig', '猪头', '🐷'],
    ['/:rose', '玫瑰', '🌹'], ['/:fade', '凋谢', '🥀'], ['/:showlove', '嘴唇', '💋'],
    ['/:heart', '爱心', '❤️'], ['/:break', '心碎', '💔'], ['/:cake', '蛋糕', '🎂'],
    ['/:li', '闪电', '⚡'], ['/:bome', '炸弹', '💣'], ['/:kn', '刀', '🗡️'],
    ['/:footb', '足球', '⚽'], ['/:ladybug', '瓢虫', '🐞'], ['/:shit', '便便', '💩'],
    ['/:moon', '月亮', '🌙'], ['/:sun', '太阳', '☀️'], ['/:gift', '礼物', '🎁'],
    ['/:hug', '拥抱', '🤗'], ['/:strong', '强', '👍'], ['/:weak', '弱', '👎'],
    ['/:share', '握手', '🤝'], ['/:v', '胜利', '✌️'], ['/:@)', '抱拳', '🙏'],
    ['/:jj', '勾引', '👉'], ['/:@@', '拳头', '✊'], ['/:bad', '差劲', '👎'],
    ['/:lvu', '爱你', '🤟'], ['/:no', 'NO', '🙅'], ['/:ok', 'OK', '👌'],
    ['/:love', '爱情', '💑'], ['/:<L>', '飞吻', '😘'], ['/:jump', '跳跳', '🦘'],
    ['/:shake', '发抖', '🥶'], ['/:<O>', '怄火', '😠'], ['/:circle', '转圈', '💫'],
    ['/:kotow', '磕头', '🙇'], ['/:turn', '回头', '🔙'], ['/:skip', '跳绳', '🪢'],
    ['/:oY', '投降', '🏳️'], ['/:#-0', '激动', '🤩'], ['/:hiphot', '乱舞', '💃'],
    ['/:kiss', '献吻', '😚'], ['/:<&', '左太极', '☯️'], ['/:&>', '右太极', '☯️'],

];

const BY_CODE = new Map(FACES.map(([code, name, emoji]) => [code, {code, name, emoji}]));
const BY_NAME = new Map(FACES.map(([code, name, emoji]) => ['[' + name + ']',
                                                            {code, name, emoji}]));
const MAX_CODE = Math.max(...FACES.map(f => f[0].length));
const MAX_NAME = Math.max(...FACES.map(f => f[1].length)) + 2;

// http(s) links up to white space, quotes, angle brackets or CJK
// punctuation; trailing ASCII punctuation is not part of a link.
const LINK = /\bhttps?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]+/gi;
const TRAILING = /[.,;:!?)\]}]+$/;

// An absolute http or https URL, normalised; '' for anything else.
export function safeHref(s) {
    let u;
    try {
        u = new URL(s);
    } catch (e) {
        return '';
    }
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '';
}

// text -> [{kind: 'text', text} | {kind: 'emoji', text: emoji, code, name}
//          | {kind: 'link', text, href}]
export function pieces(text) {
    const out = [];
    const s = String(text || '');
    let last = 0;
    for (const m of s.matchAll(LINK)) {
        const raw = m[0].replace(TRAILING, '');
        const href = safeHref(raw);
        if (!href)
            continue;
        faces(s.slice(last, m.index), out);
        out.push({kind: 'link', text: raw, href});
        last = m.index + raw.length;
    }
    faces(s.slice(last), out);
    return out;
}

function faces(s, out) {
    let start = 0;
    for (let i = 0; i < s.length; i++) {
        const c = s[i];
        if (c !== '/' && c !== '[')
            continue;
        const f = c === '/' ? longest(s, i, BY_CODE, MAX_CODE) :
            longest(s, i, BY_NAME, MAX_NAME);
        if (!f)
            continue;
        if (i > start)
            out.push({kind: 'text', text: s.slice(start, i)});
        out.push({kind: 'emoji', text: f.emoji, code: f.code, name: f.name});
        i += f.len - 1;
        start = i + 1;
    }
    if (start < s.length)
        out.push({kind: 'text', text: s.slice(start)});
}

function longest(s, i, table, max) {
    for (let n = Math.min(max, s.length - i); n >= 2; n--) {
        const f = table.get(s.substr(i, n));
        if (f)
            return Object.assign({len: n}, f);
    }
    return null;
}

// The text with the faces as emoji (a session list preview, a
// notification).
export function plain(text) {
    return pieces(text).map(p => p.text).join('');
}
