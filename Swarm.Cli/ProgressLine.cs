using System.Diagnostics;
using Spectre.Console;
using Swarm.Core.Exchange;

namespace Swarm.Cli;

/// <summary>
/// A progress line on stderr: bytes done, rate, ETA and peers. On a terminal it redraws one line; otherwise it prints
/// a plain line every few seconds so logs stay readable.
/// </summary>
internal sealed class ProgressLine(string label)
{
    private readonly Lock _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _terminal = !Console.IsErrorRedirected;
    private long _lastDraw = -10_000;
    private long _rateBytes;
    private long _rateAt;
    private double _rate;
    private bool _dirty;

    private static readonly Lazy<Spectre.Console.IAnsiConsole> StderrConsole = new(() => Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
    {
        Out = new Spectre.Console.AnsiConsoleOutput(Console.Error),
    }));

    private static Spectre.Console.IAnsiConsole Stderr => StderrConsole.Value;

    public void Report(long done, long total, int? peers = null, bool force = false)
    {
        long now = _clock.ElapsedMilliseconds;
        lock (_lock)
        {
            if (now - _rateAt >= 1000)
            {
                double seconds = (now - _rateAt) / 1000.0;
                double instant = (done - _rateBytes) / seconds;
                _rate = _rateAt == 0 ? instant : 0.5 * _rate + 0.5 * instant;
                _rateBytes = done;
                _rateAt = now;
            }
            if (!force && now - _lastDraw < (_terminal ? 250 : 5000)) return;
            _lastDraw = now;
            double pct = total > 0 ? 100.0 * done / total : 100;
            double rate = _rate > 0 ? _rate : done / Math.Max(0.001, now / 1000.0);
            // No estimate when it would be over a day: a rate near zero (waiting for an ingester, say) gives a meaningless one,
            // and one beyond TimeSpan's range took a get down (found in the lab).
            double left = rate > 0 && total > done ? (total - done) / rate : double.PositiveInfinity;
            string eta = left < 86_400 ? FormatDuration(TimeSpan.FromSeconds(left)) : "-";
            string text = total == 0 && done == 0 && !force
                ? $"{label} finding peers and the manifest" + (peers is { } c ? $"  peers {c}" : "")
                : $"{label} {Units.Bytes(done)} / {Units.Bytes(total)} {pct,5:0.0}%  {ByteRate.Format(rate)}  ETA {eta}" + (peers is { } p ? $"  peers {p}" : "");
            if (_terminal)
            {
                // A bar drawn with Spectre.Console on stderr, redrawn in place.
                int width = Console.BufferWidth > 0 ? Math.Min(Console.BufferWidth - 1, 140) : 100;
                int barWidth = 24;
                int filled = total > 0 ? (int)Math.Round(barWidth * Math.Clamp((double)done / total, 0, 1)) : 0;
                string bar = $"[green]{new string('━', filled)}[/][grey]{new string('━', barWidth - filled)}[/]";
                string plain = text.Length + barWidth + 1 > width ? text[..Math.Max(0, width - barWidth - 1)] : text;
                Stderr.Write("\r");
                Stderr.Markup($"{bar} {Spectre.Console.Markup.Escape(plain).PadRight(Math.Max(0, width - barWidth - 1))}");
                _dirty = true;
            }
            else
            {
                Console.Error.WriteLine(text);
            }
        }
    }

    /// <summary>Writes a line without tearing the progress line.</summary>
    public void WriteLine(string line)
    {
        lock (_lock)
        {
            if (_dirty) Console.Error.WriteLine();
            _dirty = false;
            Console.Error.WriteLine(line);
        }
    }

    public void Finish()
    {
        lock (_lock)
        {
            if (_dirty) Console.Error.WriteLine();
            _dirty = false;
        }
    }

    public static string FormatDuration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s" : $"{t.TotalSeconds:0.0}s";
}
