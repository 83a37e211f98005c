;; SIMD kernels for the ring all-reduce's arithmetic (src/dist/ringmath.ts). V8 does not vectorise
;; typed-array loops (about 2 ns per float32 element here); f32x4 runs near memory speed.
;; All offsets are byte offsets into this module's memory, 16-byte aligned; lengths are counts of
;; 4-float vectors (the caller pads to whole vectors with zeros, which are finite and neutral).
;; Rebuild the embedded bytes with `npm run build:wasm` after editing (a test checks they match).
(module
  (memory (export "memory") 8)

  ;; a[i] += b[i]
  (func (export "add") (param $a i32) (param $b i32) (param $vectors i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $vectors) (i32.const 4))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (v128.store (local.get $a) (f32x4.add (v128.load (local.get $a)) (v128.load (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $next))))

  ;; a[i] = (a[i] + b[i]) / n; returns 1 when some result is not finite (x - x is NaN exactly then)
  (func (export "average") (param $a i32) (param $b i32) (param $vectors i32) (param $n f32) (result i32)
    (local $end i32) (local $div v128) (local $s v128) (local $bad v128)
    (local.set $div (f32x4.splat (local.get $n)))
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $vectors) (i32.const 4))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (local.set $s (f32x4.div (f32x4.add (v128.load (local.get $a)) (v128.load (local.get $b))) (local.get $div)))
        (v128.store (local.get $a) (local.get $s))
        (local.set $s (f32x4.sub (local.get $s) (local.get $s)))
        (local.set $bad (v128.or (local.get $bad) (f32x4.ne (local.get $s) (local.get $s))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $next)))
    (v128.any_true (local.get $bad)))

  ;; 1 when some a[i] is not finite
  (func (export "nonFinite") (param $a i32) (param $vectors i32) (result i32)
    (local $end i32) (local $s v128) (local $bad v128)
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $vectors) (i32.const 4))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (local.set $s (v128.load (local.get $a)))
        (local.set $s (f32x4.sub (local.get $s) (local.get $s)))
        (local.set $bad (v128.or (local.get $bad) (f32x4.ne (local.get $s) (local.get $s))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (br $next)))
    (v128.any_true (local.get $bad))))
