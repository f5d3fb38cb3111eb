export default function Page() {
  return <p>qauth consumer</p>;
}
