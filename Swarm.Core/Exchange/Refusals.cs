using System.Net;
using Microsoft.Extensions.Logging;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>Why a connection or session was turned away; the metric label is <see cref="Refusals.Label"/>.</summary>
public enum RefusalReason
{
    /// <summary>Too many connections in admission or handshake (all, or from the source's address), and none could make room.</summary>
    HandshakePoolFull,
    /// <summary>A silent connection in admission was closed to make room for a newer one.</summary>
    HandshakeEvicted,
    NotSwarm,
    Timeout,
    SwarmKey,
    Encryption,
    /// <summary>The encrypted channel's handshake failed.</summary>
    Channel,
    /// <summary>The Swarm handshake failed (bad signature, unknown content, version).</summary>
    Handshake,
    /// <summary>The node's or the content's peer limit was reached and no idle session could give its slot up.</summary>
    PeerLimit,
    /// <summary>Too many sessions for one content from one address.</summary>
    PeersPerAddress,
    Banned,
    /// <summary>A session broke the protocol (an unexpected or oversized frame, a bad message).</summary>
    Protocol,
}

/// <summary>
/// Counts refusals by reason (for the metrics) and logs them as a summary — count, sources, reasons — at most once per
/// <see cref="Interval"/>, so a flood of refused connections costs a line every few seconds, not a line each. Sources
/// are tracked for at most <see cref="MaxSources"/> addresses per interval; the rest are counted as "others".
/// </summary>
public sealed class Refusals
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    private const int MaxSources = 32;
    private static readonly RefusalReason[] Reasons = Enum.GetValues<RefusalReason>();
    private readonly long[] _totals = new long[Reasons.Length];
    private readonly Dictionary<(IPAddress, RefusalReason), int> _window = [];
    private readonly Lock _lock = new();
    private readonly ILogger _logger;
    private long _windowCount, _others, _firstAt, _windowStart = Environment.TickCount64 - (long)Interval.TotalMilliseconds;
    private string? _lastExample;

    public Refusals(ILogger logger) => _logger = logger;

    public static string Label(RefusalReason reason) => reason switch
    {
        RefusalReason.HandshakePoolFull => "handshake_pool_full",
        RefusalReason.HandshakeEvicted => "handshake_evicted",
        RefusalReason.NotSwarm => "not_swarm",
        RefusalReason.Timeout => "timeout",
        RefusalReason.SwarmKey => "swarm_key",
        RefusalReason.Encryption => "encryption",
        RefusalReason.Channel => "channel",
        RefusalReason.Handshake => "handshake",
        RefusalReason.PeerLimit => "peer_limit",
        RefusalReason.PeersPerAddress => "peers_per_address",
        RefusalReason.Banned => "banned",
        RefusalReason.Protocol => "protocol",
        _ => reason.ToString().ToLowerInvariant(),
    };

    public static RefusalReason From(AdmissionFailure failure) => failure switch
    {
        AdmissionFailure.NotSwarm or AdmissionFailure.Closed => RefusalReason.NotSwarm,
        AdmissionFailure.Timeout => RefusalReason.Timeout,
        AdmissionFailure.SwarmKey => RefusalReason.SwarmKey,
        AdmissionFailure.Encryption => RefusalReason.Encryption,
        _ => RefusalReason.Channel,
    };

    /// <summary>Refusals since start, by reason.</summary>
    public IReadOnlyList<(RefusalReason Reason, long Count)> Totals => [.. Reasons.Select(r => (r, Interlocked.Read(ref _totals[(int)r])))];

    public long Total => _totals.Sum(t => Interlocked.Read(ref t));

    /// <summary>
    /// Counts one refusal; <paramref name="detail"/> (Swarm's words) is kept as the summary's example. With
    /// <paramref name="log"/> false it is only counted (a peer that hung up mid-handshake is no news).
    /// </summary>
    public void Record(IPAddress source, RefusalReason reason, string? detail = null, bool log = true)
    {
        Interlocked.Increment(ref _totals[(int)reason]);
        if (!log) return;
        lock (_lock)
        {
            if (_windowCount++ == 0) _firstAt = Environment.TickCount64;
            if (detail != null) _lastExample = detail;
            var key = (source, reason);
            if (_window.TryGetValue(key, out int n)) _window[key] = n + 1;
            else if (_window.Count < MaxSources) _window[key] = 1;
            else _others++;
        }
        Flush(force: false);
    }

    /// <summary>Logs the summary of the interval when it is over (or now, with <paramref name="force"/>); nothing when nothing was refused.</summary>
    public void Flush(bool force)
    {
        string? line;
        lock (_lock)
        {
            long now = Environment.TickCount64;
            if (_windowCount == 0 || (!force && now - _windowStart < Interval.TotalMilliseconds)) return;
            double seconds = (now - _firstAt) / 1000.0;
            var parts = _window.OrderByDescending(e => e.Value).Take(5).Select(e => $"{e.Key.Item1} ×{e.Value} ({Label(e.Key.Item2).Replace('_', ' ')})");
            string rest = _window.Count > 5 || _others > 0 ? $", and {_window.Skip(5).Sum(e => (long)e.Value) + _others} from other sources" : "";
            line = $"refused {_windowCount} peer connection(s) in {seconds:0.#} s: {string.Join(", ", parts)}{rest}" +
                (_lastExample != null ? $"; for example: {_lastExample}" : "");
            _window.Clear();
            _windowCount = _others = 0;
            _lastExample = null;
            _windowStart = now;
        }
        _logger.LogWarning("{Summary}", line);
    }
}

/// <summary>A session refused because a peer limit was reached (counted in <see cref="Refusals"/> already).</summary>
public sealed class PeerLimitException(string message) : WireProtocolException(message);
