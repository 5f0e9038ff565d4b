using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dalle2Sharp.Runtime;

namespace Dalle2Sharp.Tracking;

/// <summary>Delivers journal entries to one remote service (a wandb run, a Hub repo).</summary>
public interface IOutboxSender
{
    /// <summary>For messages: "wandb run entity/project/id", "huggingface repo owner/name".</summary>
    string Service { get; }

    /// <summary>
    /// Delivers a prefix of <paramref name="pending"/> (oldest first) and returns how many entries it
    /// delivered (at least one). Throws <see cref="DeliveryException"/> when the service cannot take them.
    /// </summary>
    int Deliver(IReadOnlyList<JsonObject> pending);

    /// <summary>Called when nothing was delivered for a while (wandb marks runs without one as crashed); may throw.</summary>
    void Heartbeat();
}

/// <summary>A delivery failed: <see cref="Retryable"/> for outages (network, 5xx, 429), not for refusals (4xx).</summary>
public sealed class DeliveryException(string message, bool retryable, Exception? inner = null) : IOException(message, inner)
{
    public bool Retryable { get; } = retryable;
}

/// <summary>
/// A durable, ordered delivery queue for one remote service: every metric line, console line and file
/// a run sends is first appended to a journal under data_path (files as snapshots: hard links, or copies),
/// then delivered in order by a background thread that retries outages with backoff while training goes
/// on. Memory stays bounded (pending entries are read back from disk in batches), nothing is lost on a
/// crash or an outage, and whatever is not delivered at the end stays in the folder for
/// `dalle2 tracker sync FOLDER`. Offline mode (WANDB_MODE=offline) is the same journal without the thread.
/// </summary>
public sealed class Outbox : IDisposable
{
    public const string JournalName = "journal.jsonl", ProgressName = "delivered.json", HeaderName = "outbox.json", FilesFolder = "files";

    /// <summary>Pending entries read back per delivery attempt, and their byte budget.</summary>
    private const int BatchEntries = 1000, BatchBytes = 8 << 20;

    /// <summary>Backoff between attempts while the service is down: doubling from 1 s, at most 60 s.</summary>
    private static readonly TimeSpan MinBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(60);

    public string Folder { get; }
    private readonly FileStream _journal;
    private readonly object _lock = new();
    private readonly AutoResetEvent _wake = new(false);
    private readonly Action<string> _print;
    private readonly TimeSpan _interval;
    private IOutboxSender? _sender;
    private Thread? _thread;
    private long _appended, _delivered, _deliveredOffset;
    private volatile bool _stopping, _refused, _disposed;
    private string? _lastFailure;
    private DateTime _lastContact = DateTime.UtcNow;

    /// <summary>Idle time after which the sender's heartbeat runs (wandb's client: 30 s).</summary>
    private static readonly TimeSpan HeartbeatAfter = TimeSpan.FromSeconds(30);

    /// <param name="interval">The least time between deliveries, so that lines arriving meanwhile go in one request.</param>
    public Outbox(string folder, Action<string> print, TimeSpan interval = default)
    {
        Folder = Directory.CreateDirectory(folder).FullName;
        Directory.CreateDirectory(Path.Combine(Folder, FilesFolder));
        _print = print;
        _interval = interval;
        (_delivered, _deliveredOffset) = ReadProgress();
        _journal = new FileStream(Path.Combine(Folder, JournalName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        // A line cut short by a crash is dropped: it was never acknowledged to the caller.
        _journal.SetLength(CompleteLength(_journal));
        _appended = CountLines(Path.Combine(Folder, JournalName));
        _journal.Seek(0, SeekOrigin.End);
    }

    public long Pending => Interlocked.Read(ref _appended) - Interlocked.Read(ref _delivered);

    public string? LastFailure => _lastFailure;

    /// <summary>Reads or writes the service's identity (entity/project/run, repo…): what `tracker sync` needs; never a secret.</summary>
    public JsonObject? Header
    {
        get
        {
            var file = Path.Combine(Folder, HeaderName);
            return File.Exists(file) ? JsonNode.Parse(File.ReadAllText(file)) as JsonObject : null;
        }
        set => AtomicFile.Write(Path.Combine(Folder, HeaderName), s => s.Write(Encoding.UTF8.GetBytes(value!.ToJsonString())));
    }

    /// <summary>Starts background delivery through <paramref name="sender"/>.</summary>
    public void Start(IOutboxSender sender)
    {
        _sender = sender;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"outbox {sender.Service}" };
        _thread.Start();
    }

    /// <summary>Appends an entry (durably: flushed to disk) and wakes the sender.</summary>
    public void Append(JsonObject entry)
    {
        lock (_lock)
        {
            entry["seq"] = _appended;
            var line = Encoding.UTF8.GetBytes(entry.ToJsonString(JsonLines) + "\n");
            _journal.Write(line);
            _journal.Flush(flushToDisk: true);
            Interlocked.Increment(ref _appended);
        }
        _wake.Set();
    }

    /// <summary>
    /// A snapshot of <paramref name="file"/> that later writes to it do not change (a hard link: our writes
    /// replace files by rename, so the linked bytes stay as they were; a copy where links are not possible).
    /// </summary>
    public string Snapshot(string file)
    {
        string target = Path.Combine(Folder, FilesFolder, $"{Guid.NewGuid():N}-{Path.GetFileName(file)}");
        if (link(file, target) != 0) File.Copy(file, target);
        return Path.GetRelativePath(Folder, target);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int link(string oldpath, string newpath);

    /// <summary>Delivers everything pending on this thread (`tracker sync`); returns false with the reason when the service refused or stayed
    /// down.</summary>
    public bool DeliverAll(IOutboxSender sender, int attempts = 5)
    {
        _sender = sender;
        int failures = 0;
        while (Pending > 0)
        {
            if (TryDeliverBatch()) { failures = 0; continue; }
            if (_refused || ++failures >= attempts) return false;
            Thread.Sleep(Backoff(failures));
        }
        return true;
    }

    /// <summary>Stops background delivery after what is queued is delivered, waiting at most <paramref name="wait"/>; returns what is left.</summary>
    public long Drain(TimeSpan wait)
    {
        _stopping = true;
        _wake.Set();
        _thread?.Join(wait);
        return Pending;
    }

    /// <summary>A diverged loss is journaled as NaN (wandb's history accepts NaN and Infinity).</summary>
    private static readonly JsonSerializerOptions JsonLines = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
    };

    private void Loop()
    {
        try { Deliver(); }
        catch (Exception e) when (_disposed) { _ = e; }   // the folder went away with the run: nothing left to send from it
        catch (Exception e)
        {
            _lastFailure = $"{e.GetType().Name}: {e.Message}";
            _print($"error: {Folder}: delivery stopped ({_lastFailure}); the entries not delivered are kept there");
        }
    }

    private void Deliver()
    {
        int failures = 0;
        while (!_disposed)
        {
            if (Pending == 0)
            {
                if (_stopping) return;
                _wake.WaitOne(TimeSpan.FromSeconds(1));
                if (Pending == 0 && DateTime.UtcNow - _lastContact > HeartbeatAfter)
                {
                    _lastContact = DateTime.UtcNow;
                    try { _sender!.Heartbeat(); } catch (IOException) { } catch (HttpRequestException) { }
                }
                continue;
            }
            if (TryDeliverBatch())
            {
                if (failures > 0) _print($"{_sender!.Service}: reachable again; queued entries are being delivered");
                failures = 0;
                if (!_stopping && _interval > TimeSpan.Zero) _wake.WaitOne(_interval);
                continue;
            }
            if (_refused) return;   // kept on disk for `tracker sync`; the refusal was printed
            if (++failures == 1)
                _print($"warning: {_sender!.Service} cannot be reached ({_lastFailure}); {Pending} entries queued in {Folder}, " +
                       "retrying while training goes on");
            // While stopping, the drain deadline bounds the wait; otherwise back off.
            _wake.WaitOne(Backoff(failures));
            if (_stopping && failures >= 3) return;
        }
    }

    private static TimeSpan Backoff(int failures) =>
        TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, MinBackoff.Ticks << Math.Min(failures - 1, 16)));

    private bool TryDeliverBatch()
    {
        var (entries, ends) = ReadPending();
        if (entries.Count == 0) return true;
        int delivered;
        try { delivered = _sender!.Deliver(entries); }
        catch (Exception e) when (e is IOException or HttpRequestException && e is not DeliveryException)
        {
            _lastFailure = e.Message;   // a local file or the connection: worth another try
            return false;
        }
        catch (Exception e) when (e is not DeliveryException)
        {
            // A bug or a journal entry that cannot be sent: stop delivering, keep everything for `tracker sync`, never crash training.
            _lastFailure = $"{e.GetType().Name}: {e.Message}";
            _refused = true;
            _print($"error: {_sender!.Service}: delivery stopped ({_lastFailure}); {Pending} entries are kept in {Folder}");
            return false;
        }
        catch (DeliveryException e)
        {
            _lastFailure = e.Message;
            if (!e.Retryable)
            {
                _refused = true;
                _print($"error: {_sender!.Service} refused an entry: {e.Message}; delivery stopped. {Pending} entries are kept in {Folder}: " +
                       $"fix the cause, then `dalle2 tracker sync {Folder}`");
            }
            return false;
        }
        delivered = Math.Clamp(delivered, 1, entries.Count);
        _lastContact = DateTime.UtcNow;
        lock (_lock)
        {
            _delivered += delivered;
            _deliveredOffset = ends[delivered - 1];
            var (count, offset) = (_delivered, _deliveredOffset);
            AtomicFile.Write(Path.Combine(Folder, ProgressName),
                s => s.Write(Encoding.UTF8.GetBytes(new JsonObject { ["entries"] = count, ["offset"] = offset }.ToJsonString())));
        }
        // Delivered snapshots are not needed any more.
        foreach (var entry in entries.Take(delivered))
            if (entry["snapshot"]?.GetValue<string>() is { } snapshot)
                try { File.Delete(Path.Combine(Folder, snapshot)); } catch (IOException) { }
        return true;
    }

    /// <summary>The next pending entries (complete lines only) and the journal offset after each.</summary>
    private (List<JsonObject> Entries, List<long> Ends) ReadPending()
    {
        var entries = new List<JsonObject>();
        var ends = new List<long>();
        using var stream = new FileStream(Path.Combine(Folder, JournalName), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Seek(_deliveredOffset, SeekOrigin.Begin);
        var line = new MemoryStream();
        long position = _deliveredOffset, bytes = 0;
        int b;
        while (entries.Count < BatchEntries && bytes < BatchBytes && (b = stream.ReadByte()) >= 0)
        {
            position++;
            if (b != '\n') { line.WriteByte((byte)b); continue; }
            bytes += line.Length;
            entries.Add(JsonNode.Parse(line.ToArray()) as JsonObject ?? throw new InvalidDataException($"{Folder}: journal entry is not an object"));
            ends.Add(position);
            line.SetLength(0);
        }
        return (entries, ends);
    }

    private (long Entries, long Offset) ReadProgress()
    {
        var file = Path.Combine(Folder, ProgressName);
        if (!File.Exists(file)) return (0, 0);
        var json = JsonNode.Parse(File.ReadAllText(file))!;
        return (json["entries"]!.GetValue<long>(), json["offset"]!.GetValue<long>());
    }

    private static long CompleteLength(FileStream stream)
    {
        for (long end = stream.Length; end > 0; end--)
        {
            stream.Seek(end - 1, SeekOrigin.Begin);
            if (stream.ReadByte() == '\n') return end;
        }
        return 0;
    }

    private static long CountLines(string file)
    {
        long count = 0;
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buffer = new byte[1 << 16];
        int n;
        while ((n = stream.Read(buffer)) > 0) count += buffer.AsSpan(0, n).Count((byte)'\n');
        return count;
    }

    public void Dispose()
    {
        _disposed = true;
        _stopping = true;
        _wake.Set();
        _thread?.Join(TimeSpan.FromSeconds(5));
        _journal.Dispose();
    }
}
