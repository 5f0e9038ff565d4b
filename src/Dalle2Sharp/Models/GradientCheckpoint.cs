using TorchSharp;
using static TorchSharp.torch;

namespace Dalle2Sharp.Models;

/// <summary>
/// Gradient checkpointing (TorchSharp has no torch.utils.checkpoint): the forward pass runs without
/// keeping activations; backward recomputes it with gradients on and back-propagates through the
/// recomputation, so parameter gradients are accumulated exactly as without checkpointing.
/// </summary>
public sealed class GradientCheckpoint : autograd.SingleTensorFunction<GradientCheckpoint>
{
    public override string Name => nameof(GradientCheckpoint);

    /// <summary>fn(inputs) with its activations recomputed in backward. Inputs must not be null.</summary>
    public static Tensor Run(Func<Tensor[], Tensor> fn, params Tensor[] inputs) => apply([fn, .. inputs]);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var fn = (Func<Tensor[], Tensor>)vars[0];
        var inputs = vars.Skip(1).Cast<Tensor>().ToList();
        ctx.save_data("fn", fn);
        ctx.save_for_backward(inputs);
        using var _ = no_grad();
        return fn([.. inputs]);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var fn = (Func<Tensor[], Tensor>)ctx.get_data("fn");
        var inputs = ctx.get_saved_variables().Select(t => t.detach().requires_grad_(t.requires_grad)).ToArray();
        using (enable_grad())
        {
            var output = fn(inputs);
            autograd.backward([output], [gradOutput]);
        }
        // One gradient per argument of apply: none for the function itself.
        return [null!, .. inputs.Select(t => t.grad ?? zeros_like(t))];
    }
}
