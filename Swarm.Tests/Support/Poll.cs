using System.Diagnostics;

namespace Swarm.Tests.Support;

public static class Poll
{
    /// <summary>Waits until <paramref name="condition"/> holds, checking every 20 ms; fails the test after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"timed out after {timeout.TotalSeconds:0.#} s waiting for {what}");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>As <see cref="UntilAsync(Func{bool}, TimeSpan, string)"/> for a condition that must do I/O; checks every 250 ms.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"timed out after {timeout.TotalSeconds:0.#} s waiting for {what}");
            await Task.Delay(250, TestContext.Current.CancellationToken);
        }
    }
}
