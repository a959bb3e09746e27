# acupdate.web.progressbar: the progress bar of the upload and install pages and its script: the
# <progress> bar is fed from /_ac/update_progress, and a result page's <div id=res> is shown
# under it, the bar set from the device's final figures in its data-* attributes.

BAR = b'<progress id="bar" max="100" value="0"></progress><p id="st"></p><div id="out"></div>'
JS = (
    b"<script>var B=document.getElementById('bar'),S=document.getElementById('st'),"
    b"O=document.getElementById('out');function show(p){if(p.size>0){var v=Math.min(100,"
    b"Math.floor(p.amount*100/p.size));B.value=v;",
    b"S.textContent=p.status+': '+v+' % ('+"
    b"p.amount+' of '+p.size+' bytes)'}else S.textContent=p.status;return p}"
    b"function poll(){return fetch('/_ac/update_progress',{cache:'no-store'}).then(",
    b"function(r){return r.json()}).then(show)}function put(t){var d=new DOMParser()."
    b"parseFromString(t,'text/html').getElementById('res');if(!d){O.textContent=t;return}",
    b"if(d.dataset.size)show({status:d.dataset.status,amount:+d.dataset.amount,"
    b"size:+d.dataset.size});O.innerHTML=d.innerHTML}",
)
