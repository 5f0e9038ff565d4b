using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dalle2Sharp.Bench;

// Benchmarks print one JSON object. Run them alone on the machine (two processes with 2 threads
// each on 2 cores slow each other several times over).
//   dotnet run -c Release --project bench/Dalle2Sharp.Bench -- model      (train step, sampling step, 25-step samples)
//   dotnet run -c Release --project bench/Dalle2Sharp.Bench -- samplers   (DDIM / DPM-Solver++ vs 250-step DDPM on a trained decoder)
//   dotnet run -c Release --project bench/Dalle2Sharp.Bench -- training [steps] (train step throughput; RSS over a long run)
//   dotnet run -c Release --project bench/Dalle2Sharp.Bench -- data       (input pipeline images/s; compare bench/upstream_data_baseline.py)
//   bench/model-side-by-side.sh [rounds]                                   (train/sample/guided steps vs DALLE2-pytorch, alternating)
//   bench/clip-embed-side-by-side.sh DIR                                   (dalle2 embed vs openai/CLIP in PyTorch, alternating)
Dalle2Sharp.Runtime.NativeSetup.RestartWithAllocatorTunables();
Dalle2Sharp.Runtime.NativeSetup.Configure();
var what = args.FirstOrDefault() ?? "model";
var result = what switch
{
    "model" => ModelBench.Run(args.Skip(1).ToArray()),
    "samplers" => SamplerQualityBench.Run(args.Skip(1).ToArray()),
    "data" => DataBench.Run(args.Skip(1).ToArray()),
    "training" => TrainingBench.Run(args.Skip(1).ToArray()),
    "clip-embed" => ClipEmbedBench.Run(args.Skip(1).ToArray()),
    "case" => ModelCases.Run(args.Skip(1).ToArray()),
    _ => throw new ArgumentException($"unknown benchmark \"{what}\": model or samplers"),
};
if (result["rank"] is JsonNode rank && (int)rank != 0) return;   // data-parallel cases: rank 0 reports
result["machine"] = new JsonObject
{
    ["threads"] = TorchSharp.torch.get_num_threads(),
    ["processors"] = Environment.ProcessorCount,
    ["cuda"] = TorchSharp.torch.cuda.is_available(),
};
Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

namespace Dalle2Sharp.Bench
{
    public static class Measure
    {
        /// <summary>Median milliseconds of <paramref name="runs"/> calls after <paramref name="warmup"/> untimed ones.</summary>
        public static (double Median, double Min) Time(Action action, int runs, int warmup = 2)
        {
            for (int i = 0; i < warmup; i++) action();
            var times = new List<double>();
            for (int i = 0; i < runs; i++)
            {
                var sw = Stopwatch.StartNew();
                action();
                times.Add(sw.Elapsed.TotalMilliseconds);
            }
            times.Sort();
            return (times[times.Count / 2], times[0]);
        }

        public static double RssMb() => Process.GetCurrentProcess().WorkingSet64 / 1048576.0;

        /// <summary>Peak resident set (VmHWM), as Python's ru_maxrss reports it.</summary>
        public static double PeakRssMb()
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? double.NaN : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        }
    }
}
