"""The dashboard: one self-contained HTML page (no external assets), rendered client-side.

The first snapshot is embedded so the page shows data at once; then it re-fetches
``/api/status`` every few seconds (``?refresh=MS`` overrides the period). All text goes in via
``textContent``, never ``innerHTML``, so names from config or the exchange cannot inject markup.

Stable hooks for tests and operators' scripts: ``#card-main`` (class ``alert`` when below the
expected count), ``#card-sub``, ``#card-pnl``, ``section.account[data-account]`` and
``tr.position[data-account][data-inst][data-side][data-status]`` with ``td.<field>`` cells,
``#venue`` (sim / demo / live), ``#dry-run`` and ``#ha`` (role, epoch and lease holder, with
``data-role`` leader / standby; hidden without HA) in the header, ``#sub-states`` and
``#stopped-list li[data-account]`` (stopped accounts with their reason), ``#pnl-weighting``,
``td.last`` (last margin call and its time) and ``td.chart svg.chart`` (margin against the band
over the journal's last hours, drawn with DOM calls, no markup strings).

What needs attention leads: ``#attention`` (class ``alert`` when anything does) with
``#attention-counts span.chip[data-kind][data-n]`` per kind (error, blocked, held, paused,
stale; ``bad`` when not zero; a click filters on it) and ``#attention-list li[data-kind]
[data-account]`` (the first :data:`ATTENTION_LIST_MAX`, most severe first); accounts and
positions that need attention are sorted first. ``#filter`` (text: account, instrument, side,
status or reason) and ``#only-attention`` hide the rest (``?filter=`` and ``?attention=1`` set
them on load); ``#shown`` says how many rows are shown. ``#health`` reads ``healthy``,
``degraded: ...`` (class ``warn``) or ``unhealthy: ...`` (class ``bad``), as ``/healthz``.
"""

from __future__ import annotations

import json
from typing import Any

REFRESH_MS = 3000
ATTENTION_LIST_MAX = 100  # items listed by name in the panel; the filter finds the rest

PAGE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>okx-margin-reactor status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{display:flex;justify-content:space-between;align-items:center;padding:12px 20px;
background:#1d2330;color:#fff}
header h1{font-size:17px;margin:0}
#health.bad{color:#ff8a80}#health.good{color:#8fe3a5}#health.warn{color:#fcd34d}
main{padding:16px 20px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:14px;margin-bottom:18px}
.card{background:#fff;border-radius:8px;padding:14px 16px;border-left:6px solid #3b82f6;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card h2{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#667;margin:0 0 6px}
.card .big{font-size:28px;font-weight:600}
.card .sub{color:#556}
.card.alert{border-left-color:#dc2626;background:#fef2f2}.card.alert .big{color:#b91c1c}
.card.ok{border-left-color:#16a34a}
section.account{content-visibility:auto;contain-intrinsic-size:auto 500px;
background:#fff;border-radius:8px;margin-bottom:14px;padding:10px 14px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
section.account h3{margin:2px 0 8px;font-size:15px}
.badge{font-size:11px;padding:1px 7px;border-radius:9px;margin-left:6px;background:#e5e7eb}
.badge.down{background:#fecaca;color:#7f1d1d}.badge.up{background:#bbf7d0;color:#14532d}
.badge.paused{background:#dbeafe;color:#1e3a8a}
table{border-collapse:collapse;width:100%}
th,td{text-align:right;padding:4px 8px;border-bottom:1px solid #eef}
th:first-child,td:first-child,td.side,th.side,td.status,th.status,td.reason,th.reason{
text-align:left}
td.loss{color:#b91c1c}td.gain{color:#15803d}
tr[data-status=blocked] td.status,tr[data-status=error] td.status{color:#b91c1c;font-weight:600}
tr[data-status=held] td.status{color:#b91c1c;font-weight:600}
tr[data-status=adjusting] td.status{color:#b45309;font-weight:600}
tr[data-status=stale] td.status{color:#6b7280}
tr[data-status=paused] td.status{color:#1d4ed8;font-weight:600}
.empty{color:#889;font-style:italic}
.tag{font-size:12px;padding:2px 8px;border-radius:9px;margin-right:8px;background:#334155}
.tag.live{background:#b91c1c}.tag.demo{background:#a16207}.tag.sim{background:#1d4ed8}
#dry-run{background:#7c3aed}#dry-run[hidden]{display:none}
#stopped-list{margin:6px 0 0;padding-left:18px;color:#b91c1c}
tr[data-status=dry_run] td.status{color:#7c3aed;font-weight:600}
td.last{white-space:nowrap;color:#334}td.last .when{color:#778;font-size:12px}
svg.chart{display:block}svg.chart .band{fill:#dcfce7}svg.chart .target{stroke:#16a34a;
stroke-dasharray:2 2}svg.chart .margin{fill:none;stroke:#1d4ed8;stroke-width:1.5}
svg.chart .now{fill:#1d4ed8}
#attention{background:#fff;border-radius:8px;padding:10px 16px;margin-bottom:14px;
border-left:6px solid #16a34a;box-shadow:0 1px 2px rgba(0,0,0,.08)}
#attention.alert{border-left-color:#dc2626;background:#fef2f2}
#attention h2{font-size:15px;margin:0 0 6px;display:inline-block;margin-right:12px}
#attention.alert h2{color:#b91c1c}
.chip{display:inline-block;font-size:13px;padding:2px 10px;border-radius:10px;margin-right:6px;
background:#e5e7eb;color:#4b5563;cursor:pointer}.chip.bad{background:#dc2626;color:#fff;
font-weight:600}
#attention-list{margin:8px 0 0;padding-left:18px;max-height:220px;overflow:auto;columns:2}
#attention-list li{break-inside:avoid}#attention-list .kind{color:#b91c1c;font-weight:600;
margin-right:6px}#attention-list .why{color:#556;margin-left:6px}
#attention-list li.more{list-style:none;color:#667;font-style:italic}
.tools{display:flex;gap:14px;align-items:center;margin:0 0 12px}
.tools input[type=search]{width:320px;padding:4px 8px;font:inherit}
#shown{color:#667}
[hidden]{display:none!important}
</style></head>
<body>
<header><h1>okx-margin-reactor</h1>
<div><span id="venue" class="tag">-</span><span id="dry-run" class="tag" hidden>dry run</span>
<span id="ha" class="tag" hidden></span>
<span id="health"></span> &middot; updated <span id="updated">-</span></div></header>
<main>
<section id="attention"><h2>Needs attention: <span id="attention-total">-</span></h2>
 <span id="attention-counts"></span><ul id="attention-list"></ul></section>
<div class="cards">
 <div class="card" id="card-main"><h2>Main account positions</h2>
  <div class="big"><span id="main-total">-</span> / <span id="main-expected">-</span></div>
  <div class="sub">long <span id="main-long">-</span> &middot; short
   <span id="main-short">-</span></div></div>
 <div class="card" id="card-sub"><h2>Sub-accounts</h2>
  <div class="big"><span id="sub-positions">-</span> positions</div>
  <div class="sub"><span id="sub-accounts">-</span> accounts &middot;
   <span id="sub-states">-</span></div>
  <ul id="stopped-list"></ul></div>
 <div class="card" id="card-pnl"><h2>Unrealised PnL (USDT)</h2>
  <div class="big" id="pnl-upl">-</div>
  <div class="sub">average profit rate <span id="pnl-rate">-</span>
   <span id="pnl-weighting" title="">(margin-weighted)</span></div></div>
</div>
<div class="tools"><input id="filter" type="search"
 placeholder="filter: account, instrument, status, reason" aria-label="filter">
 <label><input id="only-attention" type="checkbox"> only what needs attention</label>
 <span id="shown"></span></div>
<div id="accounts"></div>
</main>
<script id="initial" type="application/json">__INITIAL__</script>
<script>
"use strict";
const COLS = [["inst","instId"],["side","posSide"],["pos","pos"],["margin","margin"],
  ["target","target"],["band",null],["count","count"],["upl","upl"],["rate",null],
  ["status","status"],["reason","reason"],["last",null],["chart",null]];
const HEAD = ["Instrument","Side","Size","Margin","Target","Band","Count","uPnL","Profit rate",
  "Status","Reason","Last action","Margin vs band"];
const SVG="http://www.w3.org/2000/svg";
const KINDS=["error","blocked","held","paused","stale"], LIST_MAX=__LIST_MAX__;
const RANK=Object.fromEntries(KINDS.map((k,i)=>[k,i]));
function ranked(xs, f){return xs.map((x,n)=>[f(x),n,x])
  .sort((a,b)=>a[0]-b[0]||a[1]-b[1]).map(r=>r[2]);}
function where(i){return !i.account ? "engine" : (i.instId===null ? i.account
  : i.account+" "+i.instId+" "+i.posSide);}
// The panel that leads the page: counts per kind (red when not zero) and the first items.
function renderAttention(s){
  const at=s.attention||{counts:{},items:[]}, items=at.items||[];
  document.getElementById("attention").classList.toggle("alert", items.length>0);
  setText("attention-total", items.length ? items.length : "nothing");
  const cs=document.getElementById("attention-counts"); cs.replaceChildren();
  for(const k of KINDS){const n=(at.counts||{})[k]||0;
    const c=el("span", n ? "chip bad" : "chip", n+" "+k); c.dataset.kind=k; c.dataset.n=n;
    c.title="show only "+k; c.addEventListener("click", ()=>{
      document.getElementById("filter").value=k;
      document.getElementById("only-attention").checked=true; applyFilter();});
    cs.append(c);}
  const ul=document.getElementById("attention-list"); ul.replaceChildren();
  for(const i of items.slice(0, LIST_MAX)){const li=el("li");
    li.dataset.kind=i.kind; li.dataset.account=i.account;
    li.append(el("span","kind",i.kind), el("span","where",where(i)));
    if(i.reason) li.append(el("span","why",i.reason));
    ul.append(li);}
  if(items.length>LIST_MAX)
    ul.append(el("li","more","+"+(items.length-LIST_MAX)+" more: use the filter below"));
}
// Hides rows (and accounts left without rows) that do not match the filter; no re-render.
function applyFilter(){
  const f=document.getElementById("filter").value.trim().toLowerCase();
  const only=document.getElementById("only-attention").checked;
  let shown=0, total=0;
  for(const sec of document.querySelectorAll("section.account")){
    const own=sec.dataset.attention==="1", name=sec.dataset.search;
    let any=false;
    const rows=sec.querySelectorAll("tr.position");
    for(const tr of rows){ total++;
      const ok=(!only || own || tr.dataset.status in RANK) &&
        (!f || tr.dataset.search.includes(f) || name.includes(f));
      tr.hidden=!ok; if(ok){any=true; shown++;} }
    sec.hidden = !(any || (!rows.length && (!only || own) && (!f || name.includes(f))));
  }
  setText("shown", (f||only) ? shown+" of "+total+" positions shown" : total+" positions");
}
function svgEl(tag, attrs){const e=document.createElementNS(SVG, tag);
  for(const k in attrs) e.setAttribute(k, String(attrs[k])); return e;}
function hhmm(ms){return new Date(ms).toLocaleTimeString([], {hour:"2-digit",minute:"2-digit"});}
// Margin (blue steps) against the band (green) and target (dashed) over the history window.
function chart(p){
  const W=140, H=30, pts=(p.history||[]).map(([t,m])=>[Number(t),Number(m)]);
  if(pts.length<2||p.bandLo===null) return null;
  const lo=Number(p.bandLo), hi=Number(p.bandHi), tg=Number(p.target);
  const ys=pts.map(q=>q[1]).concat([lo,hi]);
  let y0=Math.min(...ys), y1=Math.max(...ys); const pad=(y1-y0)*0.1||1; y0-=pad; y1+=pad;
  const t0=pts[0][0], t1=Math.max(pts[pts.length-1][0], t0+1);
  const X=t=>((t-t0)/(t1-t0)*(W-4)+2).toFixed(1), Y=v=>(H-2-(v-y0)/(y1-y0)*(H-4)).toFixed(1);
  const s=svgEl("svg",{class:"chart",width:W,height:H,viewBox:`0 0 ${W} ${H}`,role:"img"});
  const title=svgEl("title",{}); title.textContent=
    `margin ${pts[0][1]} -> ${pts[pts.length-1][1]} since ${hhmm(t0)}; band ${lo} - ${hi}`;
  s.append(title);
  s.append(svgEl("rect",{class:"band",x:2,width:W-4,y:Y(hi),height:(Y(lo)-Y(hi)).toFixed(1)}));
  s.append(svgEl("line",{class:"target",x1:2,x2:W-2,y1:Y(tg),y2:Y(tg)}));
  s.append(svgEl("polyline",{class:"margin",points:pts.map(q=>X(q[0])+","+Y(q[1])).join(" ")}));
  const last=pts[pts.length-1];
  s.append(svgEl("circle",{class:"now",r:2,cx:X(last[0]),cy:Y(last[1])}));
  return s;
}
function el(tag, cls, text){const e=document.createElement(tag); if(cls) e.className=cls;
  if(text!==undefined&&text!==null) e.textContent=String(text); return e;}
function setText(id, v){document.getElementById(id).textContent = v===null||v===undefined?"-":v;}
function money(s){if(s===null||s===undefined) return "-"; const n=Number(s);
  return (n>0?"+":"")+n.toFixed(2);}
function pct(s){if(s===null||s===undefined) return "-"; return (Number(s)*100).toFixed(2)+" %";}
function sign(td, s){if(s!==null&&s!==undefined){const n=Number(s);
  if(n<0) td.classList.add("loss"); else if(n>0) td.classList.add("gain");}}
function render(s){
  const m=s.main, card=document.getElementById("card-main");
  setText("main-total", m.present?m.total:"n/a"); setText("main-expected", m.expected);
  setText("main-long", m.long); setText("main-short", m.short);
  card.classList.toggle("alert", m.belowExpected); card.classList.toggle("ok", !m.belowExpected);
  setText("sub-accounts", s.sub.accounts); setText("sub-positions", s.sub.positions);
  const st=s.sub.states||{};
  setText("sub-states", ["live","stale","disconnected","stopped","disabled"]
    .filter(k=>st[k]).map(k=>st[k]+" "+k).join(", ") || "none");
  const sl=document.getElementById("stopped-list"); sl.replaceChildren();
  for(const a of (s.sub.stopped||[])){const li=el("li",null,a.name+": "+a.reason);
    li.dataset.account=a.name; sl.append(li);}
  document.getElementById("card-sub").classList.toggle("alert", (s.sub.stopped||[]).length>0);
  const v=document.getElementById("venue"); v.textContent=s.venue||"venue ?";
  v.className="tag "+(s.venue||"");
  document.getElementById("dry-run").hidden=!s.dryRun;
  const ha=document.getElementById("ha"); ha.hidden=!s.ha;
  if(s.ha){ha.dataset.role=s.ha.role;
    ha.textContent=s.ha.scope+": "+s.ha.role+" \u00b7 epoch "+(s.ha.epoch??"-")+
      " \u00b7 holder "+(s.ha.holder||"none");}
  const w=document.getElementById("pnl-weighting");
  w.title=s.pnl.avgProfitRateWeighting||""; w.textContent="(margin-weighted)";
  setText("pnl-upl", money(s.pnl.upl)); setText("pnl-rate", pct(s.pnl.avgProfitRate));
  const pc=document.getElementById("card-pnl"), u=Number(s.pnl.upl);
  pc.classList.toggle("alert", u<0); pc.classList.toggle("ok", u>=0);
  const h=document.getElementById("health");
  const health = s.health || (s.healthy ? "healthy" : "down"), c=(s.attention||{}).counts||{};
  h.textContent = health==="down" ? "unhealthy: " + s.problems.join("; ")
    : health==="degraded" ? "degraded: " + KINDS.filter(k=>c[k]).map(k=>c[k]+" "+k).join(", ")
    : "healthy";
  h.className = {down:"bad", degraded:"warn"}[health] || "good";
  renderAttention(s);
  setText("updated", new Date(s.generatedMs).toLocaleTimeString());
  const box=document.getElementById("accounts"); box.replaceChildren();
  // Problems first: accounts by their most severe item, positions by their status (stable).
  const worst={};
  for(const i of ((s.attention||{}).items||[])) if(i.account)
    worst[i.account]=Math.min(worst[i.account] ?? 9, RANK[i.kind] ?? 9);
  const own=new Set(((s.attention||{}).items||[]).filter(i=>i.instId===null).map(i=>i.account));
  const accounts=ranked(s.accounts, a=>worst[a.name] ?? 9);
  const frag=document.createDocumentFragment();
  for (const a of accounts){
    const sec=el("section","account"); sec.dataset.account=a.name; sec.dataset.role=a.role;
    sec.dataset.attention=own.has(a.name) ? "1" : "0"; sec.dataset.search=a.name.toLowerCase();
    const h3=el("h3",null,a.name); h3.append(el("span","badge",a.role));
    if(!a.enabled) h3.append(el("span","badge","disabled"));
    else if(a.stoppedReason) h3.append(el("span","badge down","stopped: "+a.stoppedReason));
    else h3.append(el("span", a.connected&&a.fresh ? "badge up" : "badge down",
      !a.connected ? "disconnected" : (a.fresh ? "live" : "stale")));
    if(a.staleSinceMs) h3.append(el("span","badge down","stale for "
      +Math.round((Date.now()-a.staleSinceMs)/100)/10+" s"));
    else if(a.lastStaleS!=null) h3.append(el("span","badge","last stale "+a.lastStaleS+" s"));
    if(a.paused)
      h3.append(el("span","badge paused","paused"+(a.pausedReason?": "+a.pausedReason:"")));
    sec.append(h3);
    if(!a.positions.length){ sec.append(el("div","empty","no open positions")); }
    else {
      const t=el("table"), hr=el("tr");
      COLS.forEach(([c],i)=>hr.append(el("th",c,HEAD[i])));
      t.append(el("thead")); t.tHead.append(hr);
      const tb=el("tbody"); t.append(tb);
      for (const p of ranked(a.positions, p=>RANK[p.status] ?? 9)){
        const tr=el("tr","position"); tr.dataset.account=p.account; tr.dataset.inst=p.instId;
        tr.dataset.side=p.posSide; tr.dataset.status=p.status; tr.dataset.search=
          [p.account,p.instId,p.posSide,p.status,p.reason].join(" ").toLowerCase();
        for (const [c,k] of COLS){
          let v = k ? p[k] : null;
          if(c==="band") v = p.bandLo===null ? "-" : p.bandLo+" - "+p.bandHi;
          if(c==="rate") v = pct(p.profitRate);
          if(c==="upl") v = money(p.upl);
          if(c==="last"||c==="chart") v = null;
          if(c==="count" && p.sources && Object.keys(p.sources).length)
            v = p.count+" ("+Object.entries(p.sources).map(([k,n])=>k+" "+n).join(", ")+")";
          const td=el("td",c,v===null?"-":v);
          if(c==="last"&&p.lastAction){ const la=p.lastAction; td.textContent=
            la.action+" "+la.amount+" "+la.result+" ";
            td.append(el("span","when",hhmm(la.ms))); td.dataset.ms=la.ms; }
          if(c==="chart"){ const g=chart(p); if(g){ td.replaceChildren(g); } }
          if(c==="upl") sign(td,p.upl); if(c==="rate") sign(td,p.profitRate);
          tr.append(td);
        }
        tb.append(tr);
      }
      sec.append(t);
    }
    frag.append(sec);
  }
  box.append(frag);
  applyFilter();
  window.lastSnapshot = s;
}
const params=new URLSearchParams(location.search);
// The next fetch waits the period, or twice the last render when a large book takes longer,
// so the page stays responsive (scrolling, the filter) at 500 accounts x 20 positions.
const PERIOD=Math.max(200, Number(params.get("refresh"))||__REFRESH__);
async function refresh(){
  let took=0;
  try { const r=await fetch("api/status",{cache:"no-store"});
    if(r.ok){ const j=await r.json(), t0=performance.now(); render(j);
      took=performance.now()-t0; } }
  catch(e){ const h=document.getElementById("health"); h.textContent="status server unreachable";
    h.className="bad"; }
  setTimeout(refresh, Math.max(PERIOD, 2*took));
}
document.getElementById("filter").value=params.get("filter")||"";
document.getElementById("only-attention").checked=params.get("attention")==="1";
document.getElementById("filter").addEventListener("input", applyFilter);
document.getElementById("only-attention").addEventListener("change", applyFilter);
render(JSON.parse(document.getElementById("initial").textContent));
setTimeout(refresh, PERIOD);
</script>
</body></html>
"""


def render_page(snapshot_json: dict[str, Any], refresh_ms: int = REFRESH_MS) -> str:
    """The dashboard with ``snapshot_json`` embedded as its first state."""
    # '<' escaped so a name containing '</script>' cannot close the data block.
    data = json.dumps(snapshot_json).replace("<", "\\u003c")
    page = PAGE_TEMPLATE.replace("__LIST_MAX__", str(ATTENTION_LIST_MAX))
    return page.replace("__INITIAL__", data).replace("__REFRESH__", str(refresh_ms))
