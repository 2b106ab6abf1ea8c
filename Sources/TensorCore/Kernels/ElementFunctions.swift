// Element functions as small structs. The element-wise kernels are generic over them, so each
// kernel is specialised for its function and the compiler inlines and vectorises the loop
// (a closure parameter would be called indirectly once per element).
#if canImport(Glibc)
import Glibc
#endif

protocol UnaryFunction { func callAsFunction(_ x: Float) -> Float }
protocol BinaryFunction { func callAsFunction(_ a: Float, _ b: Float) -> Float }
protocol TernaryFunction { func callAsFunction(_ a: Float, _ b: Float, _ c: Float) -> Float }

enum Fn {
    struct Negate: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { -x } }
    struct AddConstant: UnaryFunction {
        let c: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { x + c }
    }
    struct MulConstant: UnaryFunction {
        let c: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { x * c }
    }
    struct SubtractFromConstant: UnaryFunction {
        let c: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { c - x }
    }
    struct DivideConstant: UnaryFunction {
        let c: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { c / x }
    }
    struct Exp: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { expf(x) } }
    struct Log: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { logf(x) } }
    struct Sqrt: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { x.squareRoot() } }
    struct Rsqrt: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / x.squareRoot() } }
    struct Abs: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.abs(x) } }
    struct Square: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { x * x } }
    struct Power: UnaryFunction {
        let p: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { powf(x, p) }
    }
    struct Sign: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) } }
    struct Relu: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? x : 0 } }
    struct LeakyRelu: UnaryFunction {
        let slope: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? x : slope * x }
    }
    struct Sigmoid: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / (1 + expf(-x)) } }
    struct Tanh: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { tanhf(x) } }
    struct Softplus: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 20 ? x : log1pf(expf(x)) } }
    struct Clamp: UnaryFunction {
        let lo: Float, hi: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.min(Swift.max(x, lo), hi) }
    }
    /// 1 where x != 0, else 0.
    struct NonZero: UnaryFunction { @inline(__always) func callAsFunction(_ x: Float) -> Float { x == 0 ? 0 : 1 } }

    struct Add: BinaryFunction { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b } }
    struct Subtract: BinaryFunction { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b } }
    struct Multiply: BinaryFunction { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b } }
    struct Divide: BinaryFunction { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b } }
    struct AddRelu: BinaryFunction { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { Swift.max(a + b, 0) } }
    /// b: copy the second argument (broadcast materialisation).
    struct Second: BinaryFunction { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { b } }
    /// g where ref > 0, else slope * g.
    struct MaskGradient: BinaryFunction {
        let slope: Float
        @inline(__always) func callAsFunction(_ g: Float, _ ref: Float) -> Float { ref > 0 ? g : slope * g }
    }
    /// g where lo < x < hi, else 0.
    struct ClampGradient: BinaryFunction {
        let lo: Float, hi: Float
        @inline(__always) func callAsFunction(_ g: Float, _ x: Float) -> Float { (x > lo && x < hi) ? g : 0 }
    }
    /// g where (condition != 0) == keep, else 0.
    struct Masked: BinaryFunction {
        let keep: Bool
        @inline(__always) func callAsFunction(_ g: Float, _ c: Float) -> Float { (c != 0) == keep ? g : 0 }
    }
    /// bias_act gradient: g * (y > 0 ? gain : gain * slope), zero where |y| reached the clamp.
    struct BiasActGradient: BinaryFunction {
        let gain: Float, negativeGain: Float, clamp: Float
        @inline(__always) func callAsFunction(_ g: Float, _ y: Float) -> Float {
            Swift.abs(y) < clamp ? g * (y > 0 ? gain : negativeGain) : 0
        }
    }

    /// condition != 0 ? a : b.
    struct Select: TernaryFunction { @inline(__always) func callAsFunction(_ c: Float, _ a: Float, _ b: Float) -> Float { c != 0 ? a : b } }
}
