// The chat simulator: pick who you are and which group, then talk to the bot through /sim/api/messages.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const els = {
    group: $("group"), person: $("person"), count: $("member-count"), messages: $("messages"),
    input: $("input"), send: $("send"), attach: $("attach"), photo: $("photo"),
    preview: $("preview"), previewImg: $("preview-img"), previewName: $("preview-name"),
    previewRemove: $("preview-remove"), chips: $("chips"),
  };

  const BOT_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="#fff" d="M12 2 4 5v6c0 5 3.4 9.6 8 11 4.6-1.4 8-6 8-11V5l-8-3Zm-1.2 14.2-3.5-3.5 1.4-1.4 2.1 2.1 4.9-4.9 1.4 1.4-6.3 6.3Z"/></svg>';
  const AVATAR_COLORS = ["#5b8ff9", "#5ad8a6", "#f6903d", "#e8684a", "#9270ca", "#269a99", "#ff9d4d", "#6dc8ec"];
  const GAP_FOR_TIME_MS = 5 * 60 * 1000;

  const state = {
    botName: "安全助手",
    timezone: undefined,
    people: new Map(), // id -> {id, name, unit, roles}
    groups: new Map(), // id -> {id, name, kind}
    history: new Map(), // group id -> [entry]; kept per group like separate chats on a phone
    photo: null, // File waiting to be sent
    photoUrl: null,
    busy: false,
  };

  // ---- helpers ---------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(16) + Math.random().toString(16).slice(2);
  }

  function colorFor(id) {
    let h = 0;
    for (const ch of id) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return AVATAR_COLORS[h % AVATAR_COLORS.length];
  }

  function initials(name) {
    // WeCom and DingTalk show the last two characters of a Chinese name on a default avatar.
    const chars = Array.from(name || "?");
    return chars.length > 2 ? chars.slice(-2).join("") : chars.join("");
  }

  function hhmm(date) {
    // The school's clock, not the browser's: the bot's replies quote times in the school's zone.
    const options = { hour: "2-digit", minute: "2-digit", hour12: false };
    try {
      return date.toLocaleTimeString("zh-CN", { ...options, timeZone: state.timezone });
    } catch (err) {
      return date.toLocaleTimeString("zh-CN", options);
    }
  }

  function currentGroup() { return els.group.value; }
  function currentPerson() { return els.person.value; }

  function entries() {
    const key = currentGroup();
    if (!state.history.has(key)) state.history.set(key, []);
    return state.history.get(key);
  }

  function remember(key, value) {
    try { localStorage.setItem("safetybot.sim." + key, value); } catch (e) { /* private mode */ }
  }

  function recall(key) {
    try { return localStorage.getItem("safetybot.sim." + key); } catch (e) { return null; }
  }

  // Bot text is plain with line breaks; a markdown reply may also carry **bold** and [links](https://…).
  function renderBotText(container, text, kind) {
    if (kind !== "markdown") {
      container.appendChild(document.createTextNode(text));
      return;
    }
    const pattern = /\*\*([^*]+)\*\*|\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)|<font[^>]*>|<\/font>|^#{1,6} +/gm;
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      container.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (match[1] !== undefined) {
        container.appendChild(el("strong", "", match[1]));
      } else if (match[2] !== undefined) {
        const a = el("a", "", match[2]);
        a.href = match[3];
        a.target = "_blank";
        a.rel = "noopener";
        container.appendChild(a);
      }
      last = pattern.lastIndex;
    }
    container.appendChild(document.createTextNode(text.slice(last)));
  }

  // ---- rendering -------------------------------------------------------------------------

  function openLightbox(src) {
    const box = el("div", "lightbox");
    const img = el("img");
    img.src = src;
    box.appendChild(img);
    box.addEventListener("click", () => box.remove());
    document.body.appendChild(box);
  }

  function renderEntry(entry, previous) {
    const frag = document.createDocumentFragment();
    if (!previous || entry.at - previous.at > GAP_FOR_TIME_MS) {
      frag.appendChild(el("div", "divider", hhmm(entry.at)));
    }
    if (entry.type === "system") {
      const row = el("div", "msg system" + (entry.error ? " error" : ""));
      row.appendChild(el("span", "note", entry.text));
      frag.appendChild(row);
      return frag;
    }

    const isBot = entry.type === "bot";
    const isMe = !isBot && entry.personId === currentPerson();
    const row = el("div", "msg " + (isBot ? "bot" : isMe ? "me" : "other"));
    row.dataset.testid = isBot ? "bot-message" : "user-message";

    const avatar = el("div", "avatar");
    if (isBot) {
      avatar.innerHTML = BOT_ICON;
    } else {
      avatar.textContent = initials(entry.name);
      avatar.style.background = colorFor(entry.personId);
    }
    row.appendChild(avatar);

    const body = el("div", "body");
    const sender = el("div", "sender", isBot ? state.botName : entry.name);
    if (isBot) sender.appendChild(el("span", "tag", "机器人"));
    else if (entry.role) sender.appendChild(el("span", "tag", entry.role));
    body.appendChild(sender);

    const bubble = el("div", "bubble");
    if (isBot) {
      const names = (entry.mentions || []).map((id) => "@" + (state.people.get(id)?.name || id));
      if (names.length) {
        bubble.appendChild(el("span", "at", names.join(" ")));
        bubble.appendChild(document.createTextNode("\n"));
      }
      renderBotText(bubble, entry.text, entry.kind);
      if (entry.image) {
        const img = el("img", "chart");
        img.src = entry.image;
        img.alt = "机器人发送的图片";
        img.addEventListener("click", () => openLightbox(entry.image));
        bubble.appendChild(img);
      }
      if (entry.file) {
        const link = el("a", "file");
        link.href = entry.file.data_url;
        link.download = entry.file.name;
        const ext = (entry.file.name.split(".").pop() || "FILE").toUpperCase().slice(0, 4);
        link.appendChild(el("span", "ext", ext));
        const label = el("span");
        label.appendChild(el("div", "", entry.file.name));
        label.appendChild(el("div", "hint", "点击下载"));
        link.appendChild(label);
        bubble.appendChild(link);
      }
      if (entry.buttons && entry.buttons.length) {
        // A card's buttons (issue 15): a tap sends the command it stands for, as the person chosen above.
        const bar = el("div", "card-buttons");
        for (const button of entry.buttons) {
          const tap = el("button", "card-button", button.label);
          tap.type = "button";
          tap.title = button.command;
          tap.addEventListener("click", () => send(button.command));
          bar.appendChild(tap);
        }
        bubble.appendChild(bar);
      }
    } else {
      bubble.appendChild(el("span", "at", "@" + state.botName + " "));
      bubble.appendChild(document.createTextNode(entry.text));
      if (entry.photoUrl) {
        const img = el("img", "photo");
        img.src = entry.photoUrl;
        img.alt = "随消息发送的图片";
        img.addEventListener("click", () => openLightbox(entry.photoUrl));
        bubble.appendChild(img);
      }
    }
    body.appendChild(bubble);
    row.appendChild(body);
    frag.appendChild(row);
    return frag;
  }

  function scrollToEnd() {
    els.messages.scrollTop = els.messages.scrollHeight;
  }

  function renderAll() {
    els.messages.textContent = "";
    let previous = null;
    for (const entry of entries()) {
      els.messages.appendChild(renderEntry(entry, previous));
      previous = entry;
    }
    scrollToEnd();
  }

  function add(entry) {
    const list = entries();
    const previous = list[list.length - 1] || null;
    entry.at = entry.at || new Date();
    list.push(entry);
    els.messages.appendChild(renderEntry(entry, previous));
    scrollToEnd();
  }

  function showTyping() {
    const row = el("div", "msg bot typing");
    row.id = "typing";
    const avatar = el("div", "avatar");
    avatar.innerHTML = BOT_ICON;
    const body = el("div", "body");
    body.appendChild(el("div", "sender", state.botName));
    const bubble = el("div", "bubble");
    bubble.appendChild(el("span", "dots", "正在输入"));
    body.appendChild(bubble);
    row.append(avatar, body);
    els.messages.appendChild(row);
    scrollToEnd();
  }

  function hideTyping() {
    const row = $("typing");
    if (row) row.remove();
  }

  // ---- composer --------------------------------------------------------------------------

  function autoGrow() {
    els.input.style.height = "auto";
    els.input.style.height = Math.min(els.input.scrollHeight + 2, 180) + "px";
  }

  function insertText(text) {
    const input = els.input;
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    // A template starts a new message, so put it on its own line if something is already typed.
    const before = input.value.slice(0, start);
    const glue = before && !before.endsWith("\n") && text.includes("\n") ? "\n" : "";
    input.value = before + glue + text + input.value.slice(end);
    const firstBlank = text.indexOf("：\n");
    const caret = before.length + glue.length + (firstBlank >= 0 ? firstBlank + 1 : text.length);
    input.focus();
    input.setSelectionRange(caret, caret);
    autoGrow();
  }

  function setPhoto(file) {
    clearPhoto();
    if (!file) return;
    if (!file.type.startsWith("image/")) {
      add({ type: "system", error: true, text: "只能发送图片。" });
      return;
    }
    state.photo = file;
    state.photoUrl = URL.createObjectURL(file);
    els.previewImg.src = state.photoUrl;
    els.previewName.textContent = file.name + "（" + Math.max(1, Math.round(file.size / 1024)) + " KB）";
    els.preview.hidden = false;
  }

  function clearPhoto() {
    state.photo = null;
    state.photoUrl = null; // the object URL stays alive: the sent bubble still shows it
    els.photo.value = "";
    els.preview.hidden = true;
    els.previewImg.removeAttribute("src");
  }

  function setBusy(busy) {
    state.busy = busy;
    els.send.disabled = busy;
  }

  async function send(tapped) {
    if (state.busy) return;
    const isTap = typeof tapped === "string";
    const text = isTap ? tapped : els.input.value.replace(/\s+$/, "");
    if (!isTap && !text.trim() && !state.photo) {
      els.input.focus();
      return;
    }
    const person = state.people.get(currentPerson());
    const groupId = currentGroup();
    const form = new FormData();
    form.append("person_id", person.id);
    form.append("group_id", groupId);
    form.append("text", text);
    form.append("client_msg_id", newId());
    if (state.photo && !isTap) form.append("photo", state.photo, state.photo.name);

    add({
      type: "user", personId: person.id, name: person.name, role: person.roles[0] || "",
      text, photoUrl: isTap ? null : state.photoUrl,
    });
    if (!isTap) {
      els.input.value = "";
      autoGrow();
      clearPhoto();
    }
    setBusy(true);
    showTyping();
    try {
      const response = await fetch("/sim/api/messages", { method: "POST", body: form });
      const data = await response.json().catch(() => ({}));
      hideTyping();
      if (!response.ok) {
        const detail = typeof data.detail === "string" ? data.detail : "HTTP " + response.status;
        addTo(groupId, { type: "system", error: true, text: "发送失败：" + detail });
        return;
      }
      if (data.duplicate) {
        addTo(groupId, { type: "system", text: "这条消息已经收到过（重复的消息编号），机器人没有再次处理。" });
      }
      for (const reply of data.replies || []) {
        addTo(groupId, {
          type: "bot", text: reply.text || "", kind: reply.kind, mentions: reply.mentions,
          image: reply.image, file: reply.file, buttons: reply.buttons,
        });
      }
    } catch (err) {
      hideTyping();
      addTo(groupId, { type: "system", error: true, text: "无法连接到机器人服务，请确认 safetybot serve 正在运行。" });
    } finally {
      setBusy(false);
      els.input.focus();
    }
  }

  // The reply belongs to the group the message was sent in, even if the user switched meanwhile.
  function addTo(groupId, entry) {
    if (groupId === currentGroup()) {
      add(entry);
      return;
    }
    if (!state.history.has(groupId)) state.history.set(groupId, []);
    entry.at = new Date();
    state.history.get(groupId).push(entry);
  }

  // ---- start-up --------------------------------------------------------------------------

  function fillSelectors(data) {
    state.botName = data.bot_name || state.botName;
    state.timezone = data.timezone || undefined;
    for (const p of data.people) state.people.set(p.id, p);
    for (const g of data.groups) state.groups.set(g.id, g);

    for (const g of data.groups) {
      const option = el("option", "", g.name + (g.kind === "leaders" ? "（领导群）" : ""));
      option.value = g.id;
      els.group.appendChild(option);
    }
    for (const p of data.people) {
      const label = p.name + "（" + (p.roles.join("、") || "教师") + (p.unit ? " · " + p.unit : "") + "）";
      const option = el("option", "", label);
      option.value = p.id;
      els.person.appendChild(option);
    }
    const params = new URLSearchParams(location.search);
    const wantGroup = params.get("group") || recall("group");
    const wantPerson = params.get("person") || recall("person");
    if (wantGroup && state.groups.has(wantGroup)) els.group.value = wantGroup;
    if (wantPerson && state.people.has(wantPerson)) els.person.value = wantPerson;
    els.count.textContent = "(" + (data.people.length + 1) + ")";
    document.title = (state.groups.get(currentGroup())?.name || "群聊") + " · 安全助手模拟器";
  }

  // Reminders, digests and alerts the campaign clock pushed to simulator groups.
  async function pollPushes() {
    try {
      const response = await fetch("/sim/api/pushes?after=" + state.lastPush);
      if (!response.ok) return;
      const data = await response.json();
      for (const push of data.pushes || []) {
        state.lastPush = Math.max(state.lastPush, push.id);
        if (!push.group_id || !state.groups.has(push.group_id)) continue;
        addTo(push.group_id, {
          type: "bot", text: push.text || "", kind: push.kind, mentions: push.mentions,
          image: push.image, file: push.file,
        });
      }
    } catch (err) {
      // The server may be restarting; the next poll tries again.
    }
  }

  async function start() {
    // A /sim?token=… link has set the cookie: keep the token out of the address bar and the history.
    if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
    try {
      const response = await fetch("/sim/api/directory");
      if (!response.ok) throw new Error("HTTP " + response.status);
      fillSelectors(await response.json());
    } catch (err) {
      add({ type: "system", error: true, text: "读取人员和群聊失败：" + err.message });
      return;
    }
    if (!state.people.size || !state.groups.size) {
      add({ type: "system", error: true, text: "配置里没有人员或群聊，请先在 config.toml 里添加 people 和 groups。" });
      setBusy(true);
      return;
    }
    renderAll();
    state.lastPush = 0;
    // Only pushes made from now on: history of earlier sessions is not replayed.
    const seen = await fetch("/sim/api/pushes?after=0").then((r) => r.json()).catch(() => ({ last_id: 0 }));
    state.lastPush = seen.last_id || 0;
    setInterval(pollPushes, 5000);
    document.body.dataset.ready = "1";
    els.input.focus();
  }

  els.send.addEventListener("click", send);
  els.input.addEventListener("keydown", (event) => {
    // keyCode 229 / isComposing: Enter is confirming a Chinese IME candidate, not sending.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    }
  });
  els.input.addEventListener("input", autoGrow);
  els.input.addEventListener("paste", (event) => {
    const file = Array.from(event.clipboardData?.files || []).find((f) => f.type.startsWith("image/"));
    if (file) {
      event.preventDefault();
      setPhoto(file);
    }
  });
  els.messages.addEventListener("dragover", (event) => event.preventDefault());
  els.messages.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = Array.from(event.dataTransfer?.files || []).find((f) => f.type.startsWith("image/"));
    if (file) setPhoto(file);
  });
  els.attach.addEventListener("click", () => els.photo.click());
  els.photo.addEventListener("change", () => setPhoto(els.photo.files[0]));
  els.previewRemove.addEventListener("click", clearPhoto);
  els.chips.addEventListener("click", (event) => {
    const chip = event.target.closest("[data-insert]");
    if (chip) insertText(chip.dataset.insert);
  });
  els.group.addEventListener("change", () => {
    remember("group", currentGroup());
    document.title = (state.groups.get(currentGroup())?.name || "群聊") + " · 安全助手模拟器";
    renderAll();
  });
  els.person.addEventListener("change", () => {
    remember("person", currentPerson());
    renderAll(); // "mine" follows whoever is holding the phone now
  });

  start();
})();
