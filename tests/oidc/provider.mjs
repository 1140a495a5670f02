// A real OpenID Connect provider for Arena's sign-in tests: oidc-provider (a certified
// implementation) on loopback, with one confidential test client and three test users.
// Its built-in development login page takes a user name (any password) and asks for consent.
//
//   node provider.mjs   (PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS from the environment)
//
// It prints "ready <issuer>" on stdout once it listens.
import Provider from "oidc-provider";

const port = Number(process.env.PORT || 0);
const issuer = `http://127.0.0.1:${port}`;

// Two email domains, and a group claim: what Arena's access rules look at.
const USERS = {
  alice: { email: "alice@team.example", name: "Alice Example", groups: ["arena-voters"] },
  bob: { email: "bob@other.example", name: "Bob Other", groups: [] },
  carol: { email: "carol@other.example", name: "Carol Other", groups: ["arena-voters"] },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID || "arena-test",
      client_secret: process.env.CLIENT_SECRET || "arena-test-secret",
      redirect_uris: (process.env.REDIRECT_URIS || "").split(",").filter(Boolean),
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups"],
  },
  scopes: ["openid", "email", "profile", "groups"],
  pkce: { required: () => true },
  cookies: { keys: ["arena-test-provider-cookie-key"] },
  async findAccount(ctx, id) {
    const user = USERS[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: user.email, email_verified: true, name: user.name, groups: user.groups };
      },
    };
  },
});
provider.proxy = false;

const server = provider.listen(port, "127.0.0.1", () => {
  const actual = server.address().port;
  if (actual !== port) {
    console.error(`asked for port ${port}, got ${actual}`);
    process.exit(2);
  }
  console.log(`ready ${issuer}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
