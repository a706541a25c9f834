"""Policy types behind one interface (:class:`vla_learning.policies.base.Policy`)."""
