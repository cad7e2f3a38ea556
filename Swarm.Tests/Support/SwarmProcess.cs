using System.Diagnostics;
using System.Text;

namespace Swarm.Tests.Support;

/// <summary>Runs the real <c>swarm</c> command (the built Swarm.Cli, copied next to the tests) as a child process.</summary>
public sealed class SwarmProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private SwarmProcess(Process process) => _process = process;

    public static string CliPath => Path.Combine(AppContext.BaseDirectory, "swarm.dll");

    public static SwarmProcess Start(params string[] args) => StartWith(null, args);

    /// <summary>Starts with extra environment variables (e.g. SWARM_* settings).</summary>
    public static SwarmProcess StartWith(IReadOnlyDictionary<string, string>? environment, params string[] args) => StartUnder([], environment, args);

    /// <summary>
    /// Starts under another program that runs <c>dotnet swarm.dll ARGS</c> as its last arguments (e.g. <c>setpriv … </c> to
    /// run as another user, <c>unshare … </c> in another namespace); <see cref="Id"/> is that program's process, which should
    /// exec the command so that signals reach it.
    /// </summary>
    public static SwarmProcess StartUnder(IReadOnlyList<string> wrapper, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo(wrapper.Count > 0 ? wrapper[0] : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (wrapper.Count > 0)
        {
            foreach (var w in wrapper.Skip(1)) psi.ArgumentList.Add(w);
            psi.ArgumentList.Add("dotnet");
        }
        psi.ArgumentList.Add(CliPath);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        // Test swarms run every node on 127.0.0.1: exempt loopback from the per-address limits (a test of those limits sets "off").
        psi.Environment["SWARM_LAB_LOOPBACK"] = "on";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var sp = new SwarmProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (sp._stdout) sp._stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (sp._stderr) sp._stderr.AppendLine(e.Data); };
        process.Exited += (_, _) => sp._exited.TrySetResult();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return sp;
    }

    /// <summary>Runs to completion (bounded by <paramref name="timeout"/>) and returns the exit code.</summary>
    public static async Task<SwarmProcess> RunAsync(TimeSpan timeout, params string[] args)
    {
        var p = Start(args);
        await p.WaitForExitAsync(timeout);
        return p;
    }

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout, TestContext.Current.CancellationToken);
            await _process.WaitForExitAsync(TestContext.Current.CancellationToken); // drains the output streams
        }
        catch (TimeoutException)
        {
            Kill();
            throw new TimeoutException($"swarm {string.Join(' ', _process.StartInfo.ArgumentList.Skip(1))} did not exit within {timeout.TotalSeconds:0} s\nstdout: {Stdout}\nstderr: {Stderr}");
        }
    }

    /// <summary>Waits until stdout has a line matching <paramref name="predicate"/> and returns it.</summary>
    public async Task<string> WaitForStdoutLineAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        string? found = null;
        await Poll.UntilAsync(() =>
        {
            found = Stdout.Split('\n').Select(l => l.Trim()).FirstOrDefault(predicate);
            if (found == null && HasExited) throw new InvalidOperationException($"swarm exited with {ExitCode} before printing the expected line\nstdout: {Stdout}\nstderr: {Stderr}");
            return found != null;
        }, timeout, "a line on stdout");
        return found!;
    }

    /// <summary>SIGKILL: no chance to clean up, as in a crash.</summary>
    public void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
    }

    /// <summary>SIGTERM: a graceful stop.</summary>
    public void Terminate()
    {
        if (!_process.HasExited) Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.WaitForExit();
    }

    /// <summary>SIGSTOP: the process stays alive but answers nothing, as a host too busy to schedule it.</summary>
    public void Pause() => Signal("-STOP");

    /// <summary>SIGCONT after <see cref="Pause"/>: it goes on with whatever queued up meanwhile.</summary>
    public void Resume() => Signal("-CONT");

    private void Signal(string signal)
    {
        if (!_process.HasExited) Process.Start("kill", [signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.WaitForExit();
    }

    public override string ToString() => $"exit {(HasExited ? ExitCode : -1)}\nstdout: {Stdout}\nstderr: {Stderr}";

    public async ValueTask DisposeAsync()
    {
        Kill();
        try { await _process.WaitForExitAsync(); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
