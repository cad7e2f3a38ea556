using System.Diagnostics;

namespace Swarm.Tests.Support;

/// <summary>FIFOs and device nodes in a test's own directory (made with mkfifo and mknod), and what stat(1) says about a path.</summary>
public static class SpecialFiles
{
    /// <summary>Runs a tool and returns its exit code and output (bounded: 10 s).</summary>
    public static (int ExitCode, string Output) Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(10_000))
        {
            p.Kill();
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish within 10 s");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    public static void MakeFifo(string path)
    {
        var (code, output) = Run("mkfifo", path);
        Assert.True(code == 0, $"mkfifo {path}: {output}");
    }

    /// <summary>
    /// A character device with the numbers of /dev/null (1, 3) in the test's directory. Needs root (CAP_MKNOD): skips the
    /// test otherwise, saying why.
    /// </summary>
    public static void MakeNullDevice(string path)
    {
        Assert.SkipUnless(Environment.IsPrivilegedProcess, "making a device node (mknod) needs root");
        var (code, output) = Run("mknod", path, "c", "1", "3");
        Assert.SkipUnless(code == 0, $"mknod is not permitted here: {output.Trim()}");
    }

    /// <summary>stat(1)'s file type (%F), without following a symbolic link: "fifo", "symbolic link", "character special file", "regular file"…</summary>
    public static string TypeOf(string path)
    {
        var (code, output) = Run("stat", "-c", "%F", path);
        Assert.True(code == 0, $"stat {path}: {output}");
        return output.Trim();
    }

    /// <summary>The device numbers (hex major, minor) of a device node.</summary>
    public static string DeviceNumbers(string path) => Run("stat", "-c", "%t %T", path).Output.Trim();

    /// <summary>The permission bits, as octal text ("700").</summary>
    public static string ModeOf(string path) => Run("stat", "-c", "%a", path).Output.Trim();

    /// <summary>
    /// Reads a FIFO to its end on a background thread (the open blocks until a writer comes). <see cref="FifoReader.Release"/>
    /// unblocks a reader whose writer never came, so a failing test does not leave a thread stuck in open().
    /// </summary>
    public static FifoReader ReadFifo(string path) => new(path);
}
