// bfloat16 rounding of float32 values (nearest, ties to even; NaN stays NaN), the conversion
// the bf16 matrix products apply to their operands: for tests and for code that needs the same
// rounding outside a product.
import CBFloat16

public enum BFloat16Rounding {
    /// The bf16 value nearest to `x`, as a float32 (exact).
    public static func rounded(_ x: Float) -> Float { vbf16_to_float(vbf16_from_float(x)) }

    /// The 16 bits of the bf16 value nearest to `x`.
    public static func bits(_ x: Float) -> UInt16 { vbf16_from_float(x) }

    /// Rounds every value to bf16, in place (the vectorised loop of the products).
    public static func round(_ values: UnsafeMutableBufferPointer<Float>) {
        guard let base = values.baseAddress else { return }
        vbf16_round_floats(base, values.count)
    }
}
