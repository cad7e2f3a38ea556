using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Swarm.Core.Sources;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Sources;

/// <summary>
/// <see cref="RegistryClient"/> against a fake registry (Kestrel on 127.0.0.1): the anonymous and credentialed Bearer
/// token dance, Basic challenges, where credentials go, token reuse, digest checks of manifests, and how failures are
/// classified (NotFound, Denied, Invalid, Unavailable).
/// </summary>
public sealed class RegistryClientTests
{
    private const string Repository = "demo/app";
    private static readonly byte[] ManifestBody = Encoding.UTF8.GetBytes(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        + "\"digest\":\"sha256:" + new string('1', 64) + "\",\"size\":2},\"layers\":[]}");
    private static readonly string ManifestDigest = Oci.Sha256Digest(ManifestBody);
    private static readonly string BlobDigest = "sha256:" + new string('2', 64);
    private const long BlobLength = 12345;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Basic(string user, string password) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));

    /// <summary>A request the fake registry received (in the order they arrived), and the status it answered.</summary>
    private sealed record Seen(string Method, string Path, string Query, string? Authorization)
    {
        public int Status { get; set; }
    }

    /// <summary>A registry (and token service, at /token) answering with a handler each test supplies; records every request.</summary>
    private sealed class FakeRegistry : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ConcurrentQueue<Seen> _seen = new();

        private FakeRegistry(WebApplication app) => _app = app;

        public int Port { get; private set; }
        public string Host => $"127.0.0.1:{Port}";
        public string TokenRealm => $"http://{Host}/token";
        public IReadOnlyList<Seen> Seen => _seen.ToArray();
        public IReadOnlyList<Seen> TokenRequests => Seen.Where(s => s.Path == "/token").ToList();
        public IReadOnlyList<Seen> RegistryRequests => Seen.Where(s => s.Path.StartsWith("/v2/", StringComparison.Ordinal)).ToList();

        public static async Task<FakeRegistry> StartAsync(Func<FakeRegistry, HttpContext, Task> handler)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var fake = new FakeRegistry(app);
            app.Run(async context =>
            {
                string? auth = context.Request.Headers.Authorization.Count > 0 ? context.Request.Headers.Authorization.ToString() : null;
                var seen = new Seen(context.Request.Method, context.Request.Path.Value ?? "", context.Request.QueryString.Value ?? "", auth);
                fake._seen.Enqueue(seen);
                // Set before the client can see the answer.
                context.Response.OnStarting(() =>
                {
                    seen.Status = context.Response.StatusCode;
                    return Task.CompletedTask;
                });
                await handler(fake, context);
            });
            await app.StartAsync(Ct);
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            fake.Port = new Uri(address).Port;
            return fake;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
        }
    }

    /// <summary>Serves the manifest (tag v1 or its digest) and HEAD of the blob; 404 for anything else under /v2/.</summary>
    private static async Task ServeContentAsync(HttpContext context, string? claimedDigest = null, byte[]? body = null)
    {
        string path = context.Request.Path.Value ?? "";
        var response = context.Response;
        if (path == $"/v2/{Repository}/manifests/v1" || path == $"/v2/{Repository}/manifests/{ManifestDigest}")
        {
            body ??= ManifestBody;
            response.ContentType = "application/vnd.oci.image.manifest.v1+json";
            response.Headers["Docker-Content-Digest"] = claimedDigest ?? Oci.Sha256Digest(body);
            response.ContentLength = body.Length;
            if (!HttpMethods.IsHead(context.Request.Method)) await response.Body.WriteAsync(body, Ct);
            return;
        }
        if (path == $"/v2/{Repository}/blobs/{BlobDigest}" && HttpMethods.IsHead(context.Request.Method))
        {
            response.ContentLength = BlobLength;
            response.Headers["Docker-Content-Digest"] = BlobDigest;
            return;
        }
        response.StatusCode = 404;
        response.ContentType = "application/json";
        await response.WriteAsync("{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"unknown\"}]}", Ct);
    }

    /// <summary>A registry that wants <c>Bearer TOKEN</c> and a token service that hands it out (to anyone, or for the given Basic credentials).</summary>
    private static Task<FakeRegistry> StartBearerRegistryAsync(string token, string? requiredBasic = null) => FakeRegistry.StartAsync(async (fake, context) =>
    {
        var request = context.Request;
        if (request.Path == "/token")
        {
            if (requiredBasic != null && request.Headers.Authorization.ToString() != requiredBasic)
            {
                context.Response.StatusCode = 401;
                return;
            }
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync($"{{\"token\":\"{token}\",\"expires_in\":300}}", Ct);
            return;
        }
        if (request.Headers.Authorization.ToString() != "Bearer " + token)
        {
            context.Response.StatusCode = 401;
            context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"{fake.TokenRealm}\",service=\"fake\",scope=\"repository:{Repository}:pull\"";
            return;
        }
        await ServeContentAsync(context);
    });

    [Fact]
    public async Task AnAnonymousBearerChallengeGetsATokenThatIsReusedForTheNextRequests()
    {
        await using var fake = await StartBearerRegistryAsync("t-anon");
        using var client = new RegistryClient(fake.Host);
        Assert.Equal(new Uri($"http://{fake.Host}"), client.BaseUri); // loopback: plain HTTP
        Assert.False(client.HasCredentials);
        Assert.Null(await client.AuthorizationAsync(Repository, Ct)); // nothing asked for yet

        var manifest = await client.GetManifestAsync(Repository, "v1", Ct);
        Assert.Equal(ManifestDigest, manifest.Digest);
        Assert.Equal("application/vnd.oci.image.manifest.v1+json", manifest.MediaType);
        Assert.Equal(ManifestBody, manifest.Body);
        Assert.Equal(BlobLength, await client.HeadBlobAsync(Repository, BlobDigest, Ct));
        var byDigest = await client.GetManifestAsync(Repository, ManifestDigest, Ct);
        Assert.Equal(ManifestBody, byDigest.Body);
        var head = await client.HeadManifestAsync(Repository, "v1", Ct);
        Assert.Equal(ManifestDigest, head.Digest);
        Assert.Equal("Bearer t-anon", await client.AuthorizationAsync(Repository, Ct));

        var token = Assert.Single(fake.TokenRequests); // one token for all five
        Assert.Null(token.Authorization); // anonymous: no credentials to send
        Assert.Contains("scope=" + Uri.EscapeDataString($"repository:{Repository}:pull"), token.Query, StringComparison.Ordinal);
        Assert.Contains("service=fake", token.Query, StringComparison.Ordinal);
        var requests = fake.RegistryRequests;
        Assert.Equal([(null, 401), ("Bearer t-anon", 200), ("Bearer t-anon", 200), ("Bearer t-anon", 200), ("Bearer t-anon", 200)],
            requests.Select(r => (r.Authorization, r.Status)).ToArray());
        Assert.Equal(["GET", "GET", "HEAD", "GET", "HEAD"], requests.Select(r => r.Method).ToArray());
    }

    [Fact]
    public async Task TheRetryCarriesTheTokenForTheScopeTheChallengeNamed()
    {
        // A registry whose challenge names a scope other than "repository:NAME:pull" (here with a second action): the
        // token service hands out one token per scope, and the registry takes only the token for the scope it named.
        const string Named = "repository:demo/app:pull,push";
        await using var fake = await FakeRegistry.StartAsync(async (fake, context) =>
        {
            var request = context.Request;
            if (request.Path == "/token")
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync($"{{\"token\":\"for:{request.Query["scope"]}\"}}", Ct);
                return;
            }
            if (request.Headers.Authorization.ToString() != "Bearer for:" + Named)
            {
                context.Response.StatusCode = 401;
                context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"{fake.TokenRealm}\",service=\"fake\",scope=\"{Named}\"";
                return;
            }
            await ServeContentAsync(context);
        });
        using var client = new RegistryClient(fake.Host);
        var manifest = await client.GetManifestAsync(Repository, "v1", Ct);
        Assert.Equal(ManifestDigest, manifest.Digest);
        Assert.Contains("scope=" + Uri.EscapeDataString(Named), fake.TokenRequests[0].Query, StringComparison.Ordinal);
        Assert.Equal([(null, 401), ("Bearer for:" + Named, 200)], fake.RegistryRequests.Select(r => (r.Authorization, r.Status)).ToArray());
    }

    [Fact]
    public async Task BearerWithCredentialsSendsThemToTheTokenServiceOnlyAndWrongOnesAreDenied()
    {
        string credentials = Basic("ci", "s3cret");
        await using var fake = await StartBearerRegistryAsync("t-ci", requiredBasic: credentials);

        using (var client = new RegistryClient(fake.Host, new RegistryCredentials("ci", "s3cret")))
        {
            Assert.True(client.HasCredentials);
            var manifest = await client.GetManifestAsync(Repository, "v1", Ct);
            Assert.Equal(ManifestDigest, manifest.Digest);
            Assert.Equal(BlobLength, await client.HeadBlobAsync(Repository, BlobDigest, Ct));
        }
        var token = Assert.Single(fake.TokenRequests);
        Assert.Equal(credentials, token.Authorization);
        Assert.Equal(200, token.Status);
        // The registry itself sees the token, never the password.
        Assert.All(fake.RegistryRequests, r => Assert.False(r.Authorization?.StartsWith("Basic", StringComparison.Ordinal) ?? false, r.ToString()));
        Assert.Equal(["Bearer t-ci", "Bearer t-ci"], fake.RegistryRequests.Where(r => r.Status == 200).Select(r => r.Authorization).ToArray());

        using (var wrong = new RegistryClient(fake.Host, new RegistryCredentials("ci", "wrong")))
        {
            var e = await Assert.ThrowsAsync<RegistryException>(() => wrong.GetManifestAsync(Repository, "v1", Ct));
            Assert.Equal(RegistryFailure.Denied, e.Failure);
            Assert.Contains("credentials", e.Message, StringComparison.Ordinal);
            Assert.Equal(Basic("ci", "wrong"), fake.TokenRequests[^1].Authorization);
        }
        using (var anonymous = new RegistryClient(fake.Host))
        {
            var e = await Assert.ThrowsAsync<RegistryException>(() => anonymous.HeadBlobAsync(Repository, BlobDigest, Ct));
            Assert.Equal(RegistryFailure.Denied, e.Failure);
        }
    }

    [Fact]
    public async Task ABasicChallengeGetsTheCredentialsWhichAreThenSentUpFront()
    {
        string credentials = Basic("u", "p");
        await using var fake = await FakeRegistry.StartAsync(async (fake, context) =>
        {
            if (context.Request.Headers.Authorization.ToString() != credentials)
            {
                context.Response.StatusCode = 401;
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"fake\"";
                return;
            }
            await ServeContentAsync(context);
        });

        using (var client = new RegistryClient(fake.Host, new RegistryCredentials("u", "p")))
        {
            Assert.Equal(ManifestBody, (await client.GetManifestAsync(Repository, "v1", Ct)).Body);
            Assert.Equal(BlobLength, await client.HeadBlobAsync(Repository, BlobDigest, Ct));
            Assert.Equal(credentials, await client.AuthorizationAsync(Repository, Ct));
        }
        Assert.Empty(fake.TokenRequests);
        Assert.Equal([(null, 401), (credentials, 200), (credentials, 200)], fake.RegistryRequests.Select(r => (r.Authorization, r.Status)).ToArray());

        using (var anonymous = new RegistryClient(fake.Host))
        {
            var e = await Assert.ThrowsAsync<RegistryException>(() => anonymous.GetManifestAsync(Repository, "v1", Ct));
            Assert.Equal(RegistryFailure.Denied, e.Failure);
        }
        using (var wrong = new RegistryClient(fake.Host, new RegistryCredentials("u", "nope")))
        {
            var e = await Assert.ThrowsAsync<RegistryException>(() => wrong.GetManifestAsync(Repository, "v1", Ct));
            Assert.Equal(RegistryFailure.Denied, e.Failure);
        }
    }

    [Theory]
    [InlineData(null, "Denied")] // 401 without a challenge
    [InlineData("Negotiate abc", "Denied")] // a scheme swarm does not speak
    [InlineData("Bearer service=\"fake\"", "Invalid")] // a Bearer challenge without a realm
    [InlineData("Bearer realm=\"/token\",service=\"fake\"", "Invalid")] // a realm that is not an absolute URL
    public async Task ChallengesThatCannotBeMetFailClearly(string? challenge, string failure)
    {
        await using var fake = await FakeRegistry.StartAsync((fake, context) =>
        {
            context.Response.StatusCode = 401;
            if (challenge != null) context.Response.Headers.WWWAuthenticate = challenge;
            return Task.CompletedTask;
        });
        using var client = new RegistryClient(fake.Host, new RegistryCredentials("u", "p"));
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync(Repository, "v1", Ct));
        Assert.Equal(Enum.Parse<RegistryFailure>(failure), e.Failure);
        Assert.Empty(fake.TokenRequests);
    }

    [Fact]
    public async Task AManifestWhoseBodyDoesNotMatchItsDigestIsInvalid()
    {
        string other = "sha256:" + new string('3', 64);
        byte[] tampered = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(ManifestBody).Replace("\"size\":2", "\"size\":3", StringComparison.Ordinal));
        await using var fake = await FakeRegistry.StartAsync((fake, context) => context.Request.Path.Value!.EndsWith("/v1", StringComparison.Ordinal)
            ? ServeContentAsync(context, claimedDigest: other) // the registry claims a digest its body does not have
            : ServeContentAsync(context, body: tampered)); // asked by digest, it sends another body (with that body's own digest as the header)
        using var client = new RegistryClient(fake.Host);
        var claimed = await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync(Repository, "v1", Ct));
        Assert.Equal(RegistryFailure.Invalid, claimed.Failure);
        Assert.Contains(other, claimed.Message, StringComparison.Ordinal);
        var byDigest = await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync(Repository, ManifestDigest, Ct));
        Assert.Equal(RegistryFailure.Invalid, byDigest.Failure);
        Assert.Contains(Oci.Sha256Digest(tampered), byDigest.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A404IsNotFound()
    {
        await using var fake = await FakeRegistry.StartAsync((fake, context) => ServeContentAsync(context));
        using var client = new RegistryClient(fake.Host);
        Assert.Equal(RegistryFailure.NotFound, (await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync(Repository, "v2", Ct))).Failure);
        Assert.Equal(RegistryFailure.NotFound, (await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync("demo/other", "v1", Ct))).Failure);
        Assert.Equal(RegistryFailure.NotFound, (await Assert.ThrowsAsync<RegistryException>(() => client.HeadBlobAsync(Repository, "sha256:" + new string('4', 64), Ct))).Failure);
        Assert.Equal(RegistryFailure.NotFound, (await Assert.ThrowsAsync<RegistryException>(() => client.HeadManifestAsync(Repository, "v2", Ct))).Failure);
        Assert.Equal(ManifestDigest, (await client.GetManifestAsync(Repository, "v1", Ct)).Digest); // and the same client still works
    }

    [Fact]
    public async Task ARegistryThatRefusesConnectionsOrAnswers5xxIsUnavailable()
    {
        int closed = FreePort.Get();
        using (var client = new RegistryClient($"127.0.0.1:{closed}", timeout: TimeSpan.FromSeconds(10)))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Assert.Equal(RegistryFailure.Unavailable, (await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync(Repository, "v1", Ct))).Failure);
            Assert.Equal(RegistryFailure.Unavailable, (await Assert.ThrowsAsync<RegistryException>(() => client.HeadBlobAsync(Repository, BlobDigest, Ct))).Failure);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"a refused connection took {clock.Elapsed.TotalSeconds:0.0} s to report");
        }

        await using var fake = await FakeRegistry.StartAsync((fake, context) =>
        {
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        });
        using (var client = new RegistryClient(fake.Host))
        {
            Assert.Equal(RegistryFailure.Unavailable, (await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync(Repository, "v1", Ct))).Failure);
        }

        // The token service being down is the registry being unavailable, not a refusal.
        await using var noTokens = await FakeRegistry.StartAsync((fake, context) =>
        {
            context.Response.StatusCode = 401;
            context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"http://127.0.0.1:{closed}/token\",service=\"fake\"";
            return Task.CompletedTask;
        });
        using (var client = new RegistryClient(noTokens.Host))
        {
            Assert.Equal(RegistryFailure.Unavailable, (await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync(Repository, "v1", Ct))).Failure);
        }
    }

    [Fact]
    public void ChallengeParametersAreParsedWithQuotesCommasAndEscapes()
    {
        var p = RegistryClient.ParseChallenge("realm=\"https://auth.example.com/token\",service=\"registry.example.com\",scope=\"repository:demo/app:pull,push\"");
        Assert.Equal("https://auth.example.com/token", p["realm"]);
        Assert.Equal("registry.example.com", p["service"]);
        Assert.Equal("repository:demo/app:pull,push", p["scope"]); // the comma inside quotes is part of the value

        var q = RegistryClient.ParseChallenge(" Realm=\"a\\\"b\" , error=insufficient_scope,Service=plain ");
        Assert.Equal("a\"b", q["realm"]); // keys are case-insensitive, \" is an escaped quote
        Assert.Equal("insufficient_scope", q["error"]);
        Assert.Equal("plain", q["SERVICE"]);
        Assert.Equal(3, q.Count);

        Assert.Empty(RegistryClient.ParseChallenge(""));
        Assert.Empty(RegistryClient.ParseChallenge("no-equals-sign"));
    }
}
