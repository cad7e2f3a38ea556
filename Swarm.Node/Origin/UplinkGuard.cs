using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>
/// Keeps an ingester's uploads from starving its own download from the origin: when the uplink is full, the
/// acknowledgements of the origin download queue behind upload data (measured in the lab: the origin download fell from
/// 48 to about 10 Mbit/s for seconds at a time). Once a second it compares the ingest rate with its recent best; when the
/// ingest falls below 60% of it while this node uploads, the upload limit is set to 85% of the current upload rate, and
/// raised by 10% a second while the ingest runs at 90% or better; the node's own limit is restored at the end.
/// One guard per node (<see cref="LocalNode.Uplink"/>), shared by every ingest it runs at once (an image's layers are
/// ingested together): the ingest rate it watches is theirs together, and the node's limit comes back when the last ends.
/// </summary>
public sealed class UplinkGuard : IDisposable
{
    private readonly SwarmEngine _engine;
    private readonly bool _tick;
    private readonly Lock _lock = new();
    private readonly List<Source> _sources = [];
    private Timer? _timer;
    private long _configuredUpload;
    private long _lastUploaded;
    private double _best, _cap;

    private sealed class Source(Func<long> ingested)
    {
        public readonly Func<long> Ingested = ingested;
        public long Last = ingested();
    }

    /// <param name="tick">Whether it measures once a second by itself; tests feed it through <see cref="Observe"/>.</param>
    public UplinkGuard(SwarmEngine engine, bool tick = true)
    {
        _engine = engine;
        _tick = tick;
        _configuredUpload = engine.UploadRate;
    }

    /// <summary>Starts guarding an ingest (<paramref name="ingested"/>: its bytes so far); dispose the result when it ends.</summary>
    public IDisposable Enter(Func<long> ingested)
    {
        var source = new Source(ingested);
        lock (_lock)
        {
            if (_sources.Count == 0)
            {
                _configuredUpload = _engine.UploadRate;
                _lastUploaded = _engine.TotalBytesUploaded;
                _cap = 0;
                if (_tick) _timer = new Timer(_ => Tick(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
            }
            _sources.Add(source);
            _best = 0; // more ingests now: their rate together is learnt again, not compared with the old best
        }
        return new Lease(this, source);
    }

    private sealed class Lease(UplinkGuard guard, Source source) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) guard.Leave(source);
        }
    }

    private void Leave(Source source)
    {
        lock (_lock)
        {
            _sources.Remove(source);
            _best = 0; // fewer ingests now: their rate together is learnt again
            if (_sources.Count == 0) Stop();
        }
    }

    /// <summary>Stops measuring and gives the node its own upload limit back.</summary>
    private void Stop()
    {
        _timer?.Dispose();
        _timer = null;
        if (_cap > 0) _engine.SetRates(_configuredUpload, _engine.DownloadRate);
        _cap = 0;
    }

    private void Tick()
    {
        lock (_lock)
        {
            if (_sources.Count == 0) return;
            double ingestRate = 0;
            foreach (var s in _sources)
            {
                long now = s.Ingested();
                ingestRate += now - s.Last;
                s.Last = now;
            }
            long uploaded = _engine.TotalBytesUploaded;
            double uploadRate = uploaded - _lastUploaded;
            _lastUploaded = uploaded;
            Observe(ingestRate, uploadRate);
        }
    }

    /// <summary>One second's ingest and upload, in bytes.</summary>
    public void Observe(double ingestRate, double uploadRate)
    {
        lock (_lock)
        {
            _best = Math.Max(_best * 0.98, ingestRate);
            if (uploadRate > 0 && ingestRate < 0.6 * _best)
            {
                _cap = Math.Max(512 * 1024, 0.85 * uploadRate);
                Apply();
            }
            else if (_cap > 0 && ingestRate >= 0.9 * _best)
            {
                _cap *= 1.1;
                Apply();
            }
        }
    }

    private void Apply()
    {
        long cap = (long)_cap;
        if (_configuredUpload > 0 && cap >= _configuredUpload) cap = _configuredUpload;
        if (cap != _engine.UploadRate) _engine.SetRates(cap, _engine.DownloadRate);
    }

    public void Dispose()
    {
        lock (_lock) Stop();
    }
}
