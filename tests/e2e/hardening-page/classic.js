// The classic-script build (the global `tokenkeeper`) under the page's strict
// CSP, as the README's third way to load it, with the script in a file.
tokenkeeper().then(async () => {
  const keeper = new tokenkeeper.TokenKeeper({ refreshUrl: "/token/refresh", channel: "classic" });
  await keeper.login("/login", { username: "user1", password: "password1" });
  const res = await keeper.fetch("/api/me");
  document.getElementById("result").textContent = `${res.status} ${(await res.json()).sub}`;
});
