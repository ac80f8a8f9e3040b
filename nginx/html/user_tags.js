// wxkf console — the user's WeChat tags in the profile dialog, by name:
// the page's "tags" ([{id, name|null}], names from the account's list that
// `wxkf jobs` keeps), the id only in the tooltip; an id the list does not
// have shows as 标签 #<id>. Without "tags" (Redis was unreachable when the
// page was read) every tag shows by its id the same way.

import {t} from './i18n.js';
import {h} from './dom.js';

// The tags of profile page p, or [] when it has none.
function tagsOf(p) {
    if (Array.isArray(p.tags))
        return p.tags;
    const ids = p.info && Array.isArray(p.info.tagid_list) ? p.info.tagid_list : [];
    return ids.map(id => ({id, name: null}));
}

// One chip per tag (text only), or null when the user has none.
export function tagChips(p) {
    const tags = tagsOf(p);
    if (!tags.length)
        return null;
    return h('span', {class: 'chips', dataset: {testid: 'profile-tags'}},
             ...tags.map(g => h('span', {
                 class: 'label-chip user-tag', title: t('tags.id', {id: g.id}),
                 dataset: {testid: 'profile-tag', id: String(g.id)},
             }, g.name || t('tags.unknown', {id: g.id}))));
}
