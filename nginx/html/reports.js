// wxkf console — the reports panel of the admin view: a date range (the
// last 7 days by default), by agent, group, hour of the day or day, a
// table with the totals, two bar charts drawn as SVG by the page, and the
// CSV and XLSX downloads (GET /api/v1/reports, /api/v1/reports/export;
// docs/reports.md).

import {request} from './api.js';
import {t} from './i18n.js';
import {fmtDur, h, saveBlob, setError, tid, toast, toastError, errInfo} from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const BYS = ['agent', 'group', 'hour', 'day'];
const RANGE_DAYS = 7;

let form = null;

function isoDay(d) {
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function query() {
    return {from: form.from.value, to: form.to.value, by: form.by.value};
}

export function enterReports(keep) {
    const root = tid('reports-admin');
    if (!root || form)
        return;
    // first time: the dates are left to the server (the account's last
    // RANGE_DAYS days, by its day, not the browser's), then shown
    const today = new Date();
    const first = new Date(today.getTime() - (RANGE_DAYS - 1) * 86400000);
    const q = keep || {from: isoDay(first), to: isoDay(today), by: 'agent'};
    const serverDays = !keep;
    form = {
        from: h('input', {type: 'date', value: q.from,
                          'data-testid': 'reports-from',
                          'aria-label': t('reports.from')}),
        to: h('input', {type: 'date', value: q.to,
                        'data-testid': 'reports-to',
                        'aria-label': t('reports.to')}),
        by: h('select', {'data-testid': 'reports-by',
                         'aria-label': t('reports.by')},
              ...BYS.map((b) => h('option', {value: b, selected: b === q.by},
                                  t('reports.by.' + b)))),
    };
    root.replaceChildren(
        h('div', {class: 'reports-bar'},
          h('label', {}, t('reports.from'), ' ', form.from),
          h('label', {}, t('reports.to'), ' ', form.to),
          h('label', {}, t('reports.by'), ' ', form.by),
          h('button', {type: 'button', 'data-testid': 'reports-show',
                       class: 'primary', onclick: () => show()}, t('reports.show')),
          h('button', {type: 'button', class: 'link',
                       'data-testid': 'reports-csv',
                       onclick: () => download('csv')}, t('reports.csv')),
          h('button', {type: 'button', class: 'link',
                       'data-testid': 'reports-xlsx',
                       onclick: () => download('xlsx')}, t('reports.xlsx'))),
        h('p', {class: 'error', 'data-testid': 'reports-error', hidden: true}),
        h('div', {class: 'reports-charts', 'data-testid': 'reports-charts'}),
        h('div', {class: 'table-wrap'},
          h('table', {class: 'grid reports-table',
                      'data-testid': 'reports-table'})));
    show(serverDays);
}

export function leaveReports() {
    form = null;
}

// The language changed: drawn again with the same query.
export function relabelReports() {
    if (!form)
        return;
    const q = query();
    form = null;
    enterReports(q);
}

function keyName(by, row) {
    if (by === 'agent')
        return row.name ? `${row.name} (${row.key})` : row.key;
    if (by === 'group')     // routing's "_all": a user no group rule took
        return row.key === '' || row.key === '_all' ? t('reports.no_group') : row.key;
    if (by === 'hour')
        return t('reports.hour', {h: row.key});
    return row.key;
}

const secs = (v) => v === null || v === undefined ? '–' : fmtDur(v * 1000);
const pair = (a, b) => `${secs(a)} / ${secs(b)}`;

const COLUMNS = [
    ['sessions', (r) => r.sessions],
    ['msgs_in', (r) => r.msgs_in],
    ['msgs_out', (r) => r.msgs_out],
    ['frt', (r) => pair(r.frt_median_s, r.frt_p90_s)],
    ['handle', (r) => secs(r.handle_avg_s)],
    ['transfers', (r) => r.transfers],
    ['wait', (r) => pair(r.wait_median_s, r.wait_p90_s)],
    ['abandoned', (r) => r.abandoned],
    ['after_hours', (r) => r.after_hours],
    ['labels', (r) => Object.entries(r.labels || {})
        .map(([k, n]) => `${k} ${n}`).join('、')],
];

// The name cell, then one cell per column, each with its label for the
// phone's cards (data-label, style.css).
function tableRow(name, row, attrs) {
    return h('tr', attrs, h('td', {class: 'c-name'}, name),
             ...COLUMNS.map(([k, f]) => h('td', {dataset: {label: t('reports.col.' + k)}},
                                          f(row))));
}

function renderTable(by, body) {
    const table = tid('reports-table');
    const head = h('tr', {}, h('th', {}, t('reports.col.key')),
                   ...COLUMNS.map(([k]) => h('th', {}, t('reports.col.' + k))));
    const rows = body.rows.map((r) => tableRow(
        keyName(by, r), r, {'data-testid': 'reports-row', 'data-key': r.key}));
    const total = body.total ? tableRow(
        t('reports.total'), body.total,
        {class: 'total', 'data-testid': 'reports-total'}) : null;
    table.replaceChildren(h('thead', {}, head),
                          h('tbody', {}, ...rows, total));
}

function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs))
        el.setAttribute(k, String(v));
    for (const kid of kids)
        el.append(kid);
    return el;
}

// One bar chart: a bar per row for field, its value at the bar's end.
function barChart(by, rows, field, title) {
    const bar = 18, gap = 6, left = 120, width = 360;
    const max = Math.max(1, ...rows.map((r) => r[field] || 0));
    const height = rows.length * (bar + gap) + 24;
    const chart = svg('svg', {viewBox: `0 0 ${left + width + 50} ${height}`,
                              role: 'img', 'aria-label': title,
                              class: 'bar-chart', 'data-testid': 'reports-chart'});
    chart.append(svg('text', {x: 0, y: 14, class: 'chart-title'},
                     document.createTextNode(title)));
    rows.forEach((r, i) => {
        const y = 24 + i * (bar + gap);
        const w = Math.round(((r[field] || 0) / max) * width);
        const name = keyName(by, r);
        chart.append(
            svg('text', {x: left - 6, y: y + bar - 5, 'text-anchor': 'end',
                         class: 'chart-label'},
                document.createTextNode(name.length > 14 ?
                                        name.slice(0, 13) + '…' : name)),
            svg('rect', {x: left, y, width: Math.max(w, 1), height: bar,
                         rx: 3, class: 'chart-bar ' + field}),
            svg('text', {x: left + w + 6, y: y + bar - 5, class: 'chart-value'},
                document.createTextNode(String(r[field] || 0))));
    });
    return chart;
}

function renderCharts(by, body) {
    const box = tid('reports-charts');
    if (!body.rows.length) {
        box.replaceChildren(h('p', {class: 'muted', 'data-testid': 'reports-empty'},
                              t('reports.empty')));
        return;
    }
    box.replaceChildren(
        barChart(by, body.rows, 'sessions', t('reports.col.sessions')),
        barChart(by, body.rows, 'msgs_in', t('reports.col.msgs_in')));
}

async function show(serverDays = false) {
    const err = tid('reports-error');
    const q = query();
    setError(err, '');
    tid('reports-charts').replaceChildren(h('p', {class: 'muted'},
                                            t('reports.loading')));
    try {
        const body = await request('GET', '/api/v1/reports', {
            query: serverDays ? {by: q.by} : q});
        if (serverDays && form && body.from && body.to) {
            form.from.value = body.from;
            form.to.value = body.to;
        }
        renderCharts(q.by, body);
        renderTable(q.by, body);
    } catch (e) {
        tid('reports-charts').replaceChildren();
        const {msg, details} = errInfo(e);
        setError(err, msg, details);
    }
}

async function download(format) {
    const q = query();
    const name = `report-${q.by}-${q.from}-${q.to}.${format}`;
    try {
        const blob = await request('GET', '/api/v1/reports/export',
                                   {query: {...q, format}, blob: true});
        saveBlob(blob, name);
        toast(t('reports.downloaded', {name}));
    } catch (e) {
        toastError(e);
    }
}
