using System.Diagnostics;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>The deployable build: one self-contained executable that runs on a host without .NET.</summary>
[Collection(DhtNetworkCollection.Name)] // publishing is heavy: not beside timing-sensitive tests
public class PublishTests
{
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Swarm.sln"))) return dir.FullName;
        throw new InvalidOperationException("Swarm.sln not found above " + AppContext.BaseDirectory);
    }

    private static async Task<(int Code, string Out, string Err)> RunAsync(string file, IEnumerable<string> args, string cwd, IDictionary<string, string>? environment, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = cwd };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (environment != null)
        {
            psi.Environment.Clear();
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout}");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task TheSingleFileExecutableRunsHelpWithoutDotnet()
    {
        using var dir = new TempDirectory();
        string root = RepositoryRoot();
        var (code, output, error) = await RunAsync("dotnet",
            ["publish", Path.Combine(root, "Swarm.Cli", "Swarm.Cli.csproj"), "-c", "Release", "-r", "linux-x64", "--self-contained", "true",
             "-p:PublishSingleFile=true", "-o", dir.Combine("publish"), "-nologo", "-v", "q"],
            root, null, TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"publish failed:\n{output}\n{error}");
        string[] files = Directory.GetFiles(dir.Combine("publish")).Select(Path.GetFileName).Where(f => !f!.EndsWith(".pdb", StringComparison.Ordinal)).ToArray()!;
        Assert.Equal(["swarm"], files); // one file

        // A clean directory and an environment without .NET: no DOTNET_ROOT, no dotnet on PATH.
        string clean = dir.Combine("clean");
        Directory.CreateDirectory(clean);
        File.Copy(dir.Combine("publish", "swarm"), Path.Combine(clean, "swarm"));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(Path.Combine(clean, "swarm"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var env = new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin", ["HOME"] = clean };
        (code, output, error) = await RunAsync(Path.Combine(clean, "swarm"), ["--help"], clean, env, TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"swarm --help failed ({code}):\n{output}\n{error}");
        Assert.Contains("get", output, StringComparison.Ordinal);
        Assert.Contains("node", output, StringComparison.Ordinal);
        Assert.DoesNotContain("dotnet", error, StringComparison.OrdinalIgnoreCase);
    }
}
