//! The dashboard's embedded assets: one stylesheet, the favicon, and the small script
//! behind the "Copy" buttons (the page works without it).

use actix_web::HttpResponse;

pub const STYLESHEET: &str = "/dashboard/assets/dashboard.css";
pub const FAVICON: &str = "/dashboard/assets/favicon.svg";
pub const SCRIPT: &str = "/dashboard/assets/copy.js";

const CSS: &str = "body{max-width:72rem}\
nav.top{display:flex;flex-wrap:wrap;gap:.2rem 1rem;align-items:center;border-bottom:1px solid #d5dae1;padding:.4rem 0;margin-bottom:1rem}\
nav.top a{color:#2457c5;text-decoration:none}nav.top form{margin-left:auto}nav.top button{margin:0}\
nav.tabs{display:flex;flex-wrap:wrap;gap:.2rem .8rem;margin:.6rem 0}nav.tabs a{color:#2457c5}nav.tabs a.current{font-weight:600;color:#1d2430;text-decoration:none}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.95rem}\
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e4e7ec;vertical-align:top}th{background:#f6f7f9;font-weight:600}\
td.num,th.num{text-align:right}.muted{color:#5b6575}.ok{color:#1d7a35}.warn{color:#9a5b00}.bad{color:#a4161a}\
dl.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:.6rem}dl.stats div{border:1px solid #d5dae1;border-radius:6px;padding:.6rem}\
dl.stats dt{font-size:.85rem;color:#5b6575}dl.stats dd{margin:0;font-size:1.4rem;font-weight:600}\
form.inline{display:inline}form.inline button{margin:.2rem .3rem .2rem 0;padding:.25rem .6rem;font-size:.9rem}\
form.search{display:flex;gap:.4rem;align-items:center}form.search input{flex:1}form.search button{margin:0}\
input[type=url],input[type=password],input[type=number],input[type=datetime-local],select{width:100%;padding:.4rem;box-sizing:border-box}\
.secret{display:flex;gap:.4rem;align-items:center;flex-wrap:wrap}.secret code{word-break:break-all}.secret button{margin:0}\
button.danger{background:#a4161a;border-color:#a4161a}.pager{display:flex;gap:1rem;margin:.6rem 0}\
@media (max-width:40rem){body{margin:1rem auto}th,td{padding:.3rem}}";

const FAVICON_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
<rect width=\"32\" height=\"32\" rx=\"6\" fill=\"#2457c5\"/>\
<path d=\"M9 21c1.5 1.4 3.8 2.2 6.4 2.2 3.6 0 5.9-1.6 5.9-4.2 0-2.3-1.6-3.4-5-4.1-2.5-.5-3.3-1-3.3-2 0-1 1-1.7 2.7-1.7 1.6 0 3 .5 4.2 1.5l1.5-2.3c-1.5-1.2-3.4-1.9-5.7-1.9-3.5 0-5.8 1.8-5.8 4.5 0 2.4 1.7 3.5 5 4.1 2.4.5 3.2 1 3.2 2s-1.1 1.7-2.9 1.7c-2 0-3.8-.7-5.2-2z\" fill=\"#fff\"/></svg>";

// Progressive: every button with `data-copy` copies the text of the element it names.
// The Clipboard API needs a secure context; elsewhere the text is selected for Ctrl+C.
const COPY_JS: &str = "document.addEventListener('click',function(e){\
var b=e.target.closest?e.target.closest('button[data-copy]'):null;if(!b)return;\
var el=document.getElementById(b.getAttribute('data-copy'));if(!el)return;\
var t=el.textContent;function done(){b.textContent='Copied';setTimeout(function(){b.textContent='Copy';},1500);}\
function select(){var r=document.createRange();r.selectNodeContents(el);var s=window.getSelection();s.removeAllRanges();s.addRange(r);}\
if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(t).then(done,select);}else{select();}});";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

pub async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn favicon() -> HttpResponse {
    asset("image/svg+xml", FAVICON_SVG)
}

pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", COPY_JS)
}
