"""Styles of the inspection pages (explorer, history, search, operations), appended to the UI's one stylesheet.

Colours keep at least 4.5:1 contrast on their backgrounds; focus is always visible for keyboard users.
"""

INSPECTION_STYLE = b"""
.skip{position:absolute;left:-999px;top:0;background:#fff;color:#14233c;padding:.4rem .8rem;z-index:9}
.skip:focus{left:.5rem}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible,
textarea:focus-visible{outline:3px solid #e0b400;outline-offset:2px}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
label{font-weight:600;margin-right:.3rem}
input,select,textarea{font:inherit;padding:.25rem .4rem;margin:.15rem .4rem .15rem 0}
.explorer{display:flex;flex-wrap:wrap;gap:1rem}.card{background:#fff;border:1px solid #d9dde3;padding:.6rem 1rem;
border-radius:4px;flex:1 1 26rem}.card h2{margin-top:.2rem;font-size:1.1rem}
.card label{display:block;margin-top:.4rem}.card button{margin-top:.5rem;display:block}
code.wrap{display:block;word-break:break-all}main table{max-width:100%}
.cap{display:inline-block;border-radius:3px;padding:0 .35rem;margin:0 .1rem;font-size:.85em;border:1px solid}
.cap.r{background:#e6f1ff;border-color:#2f5fa8;color:#173a70}.cap.w{background:#fff1dc;border-color:#a45a00;color:#6b3a00}
.cap.deny{background:#fde7ea;border-color:#a3122a;color:#7d0d20}
ul.tree,ul.tree ul{list-style:none;padding-left:1.1rem;margin:.1rem 0}ul.tree li{margin:.1rem 0}
summary{cursor:pointer}.route{border-top:1px solid #d9dde3;margin-top:1rem}
nav.subnav ul{display:flex;gap:1rem;list-style:none;padding:0;flex-wrap:wrap}
ul.cards{display:flex;gap:.8rem;list-style:none;padding:0;flex-wrap:wrap}
ul.cards li{background:#fff;border:1px solid #d9dde3;padding:.5rem .9rem;border-radius:4px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dl.facts dt{font-weight:600}
dl.facts dd{margin:0}.ok{color:#17622b}.pager{margin:.5rem 0}.pager a{margin:0 .6rem}
svg.chart{background:#fff;border:1px solid #d9dde3;font-size:12px;font-family:system-ui,sans-serif}
svg.chart .bar{fill:#2f5fa8}svg.chart .line{stroke:#2f5fa8;stroke-width:2}svg.chart .axis{stroke:#6a7480}
figure{margin:.5rem 0 1.2rem}figcaption{color:#4a535e;font-size:.9em}
time{border-bottom:1px dotted #6a7480;cursor:help}code{font-size:.92em}
.inline-form{margin:.3rem 0}.summary{font-weight:600}
@media (max-width:60rem){header{flex-wrap:wrap}main{padding:.6rem}table{min-width:0}}
"""
