using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using Swarm.Tests.Support;

namespace Swarm.Tests.Deploy;

/// <summary>
/// The repository's deploy/swarm.service as systemd's own checker rates it: <c>systemd-analyze security --offline=true</c>
/// at an exposure of 4.0 or lower (it exits non-zero above <c>--threshold=40</c>), and <c>systemd-analyze verify</c> with
/// nothing to say. Verify insists that ExecStart's program exists; where /usr/local/bin/swarm is not installed the unit is
/// checked as a copy that differs in that one path, pointed at the real swarm executable the tests run.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed partial class SystemdUnitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private const string InstalledPath = "/usr/local/bin/swarm";

    [GeneratedRegex(@"Overall exposure level for swarm\.service: (\d+\.\d) ([A-Z]+)")]
    private static partial Regex Exposure();

    private static string UnitFile()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Swarm.sln"))) return Path.Combine(dir.FullName, "deploy", "swarm.service");
        throw new InvalidOperationException($"no Swarm.sln above {AppContext.BaseDirectory}");
    }

    private static string? Analyzer() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "systemd-analyze")).FirstOrDefault(File.Exists);

    private static async Task<(int Code, string Output)> RunAsync(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["SYSTEMD_COLORS"] = "0";
        psi.Environment["SYSTEMD_PAGER"] = "";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        try
        {
            await p.WaitForExitAsync(TestContext.Current.CancellationToken).WaitAsync(Timeout, TestContext.Current.CancellationToken);
        }
        catch (TimeoutException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within {Timeout.TotalSeconds:0} s");
        }
        return (p.ExitCode, (await stdout) + (await stderr));
    }

    [Fact]
    public async Task SecurityExposureIsFourOrLower()
    {
        string? analyze = Analyzer();
        Assert.SkipWhen(analyze == null, "systemd-analyze (Debian's systemd package) is not installed");
        var (code, output) = await RunAsync(analyze!, "security", "--offline=true", "--threshold=40", "--no-pager", UnitFile());
        var m = Exposure().Match(output);
        Assert.True(m.Success, $"no overall exposure in systemd-analyze's output:\n{output}");
        double exposure = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(exposure <= 4.0, $"exposure {exposure} {m.Groups[2].Value} is above 4.0:\n{output}");
        Assert.True(code == 0, $"systemd-analyze security exited {code} (above --threshold=40):\n{output}");
    }

    [Fact]
    public async Task VerifyFindsNothingToSay()
    {
        string? analyze = Analyzer();
        Assert.SkipWhen(analyze == null, "systemd-analyze (Debian's systemd package) is not installed");
        string unit = UnitFile();
        string text = await File.ReadAllTextAsync(unit, TestContext.Current.CancellationToken);
        Assert.Contains($"\nExecStart={InstalledPath} node ", text, StringComparison.Ordinal);

        // The unit as it is: clean, or (swarm not installed here) only the missing program.
        var (code, output) = await RunAsync(analyze!, "verify", unit);
        string missing = $"swarm.service: Command {InstalledPath} is not executable: No such file or directory";
        if (File.Exists(InstalledPath)) Assert.True(code == 0 && output.Trim().Length == 0, $"systemd-analyze verify {unit} exited {code}:\n{output}");
        else Assert.True(output.Trim() == missing, $"systemd-analyze verify {unit} said more than that {InstalledPath} is missing:\n{output}");

        // The same unit with ExecStart at a real swarm executable: nothing at all to say.
        using var dir = new TempDirectory();
        string program = dir.Combine("swarm");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "swarm"), program);
        File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
            | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        string copy = dir.Combine("swarm.service");
        await File.WriteAllTextAsync(copy, text.Replace($"\nExecStart={InstalledPath} ", $"\nExecStart={program} ", StringComparison.Ordinal), TestContext.Current.CancellationToken);
        (code, output) = await RunAsync(analyze!, "verify", copy);
        Assert.True(code == 0 && output.Trim().Length == 0, $"systemd-analyze verify exited {code}:\n{output}");
    }
}
